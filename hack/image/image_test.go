package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"sigs.k8s.io/yaml"

	"github.com/kacme/kacme/hack/image/oci"
)

// TestImage (issue 14) reads the image make image built (make test builds it
// first and passes its layout in KACME_IMAGE): one index for linux/amd64 and
// linux/arm64, each image running /kacme as a non-root user, labelled with
// the source, version and revision; the version is the chart's appVersion and
// what the binary in the image says; the amd64 binary runs.
func TestImage(t *testing.T) {
	dir := os.Getenv("KACME_IMAGE")
	if dir == "" {
		if os.Getenv("CI") != "" || os.Getenv("KACME_INTEROP") == "required" {
			t.Fatal("KACME_IMAGE is not set (make test builds the image with make image and sets it)")
		}
		t.Skip("KACME_IMAGE is not set; run make test (or make image, then KACME_IMAGE=bin/image)")
	}
	chart, err := os.ReadFile(filepath.Join("..", "..", "charts", "kacme", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chart, &meta); err != nil || meta.AppVersion == "" {
		t.Fatalf("chart appVersion: %v", err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "ghcr.io/kacme/kacme:"+meta.AppVersion {
		t.Fatalf("index.json names %+v, want one image ghcr.io/kacme/kacme:%s", im.Manifests, meta.AppVersion)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the image index is not consistent: %v", err)
	}
	platforms, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range platforms.Manifests {
		p := d.Platform.OS + "/" + d.Platform.Architecture
		seen[p] = true
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if strings.Join(c.Entrypoint, " ") != oci.Entrypoint || c.User == "" || strings.HasPrefix(c.User, "0") || c.User == "root" {
			t.Errorf("%s: entrypoint %v, user %q; want %s as a non-root user", p, c.Entrypoint, c.User, oci.Entrypoint)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: the config says %s/%s", p, cf.OS, cf.Architecture)
		}
		for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.revision"} {
			if c.Labels[l] == "" {
				t.Errorf("%s: no label %s", p, l)
			}
		}
		if v := c.Labels["org.opencontainers.image.version"]; v != meta.AppVersion {
			t.Errorf("%s: version label %q, chart appVersion %q", p, v, meta.AppVersion)
		}
		bin := extract(t, img, strings.TrimPrefix(oci.Entrypoint, "/"))
		if p == "linux/"+runtime.GOARCH && runtime.GOOS == "linux" {
			out, err := exec.Command(bin, "version").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "kacme "+meta.AppVersion+" (revision "+c.Labels["org.opencontainers.image.revision"]+")") {
				t.Errorf("%s binary: kacme version = %q (%v), want kacme %s with revision %s", p, out, err, meta.AppVersion,
					c.Labels["org.opencontainers.image.revision"])
			}
		}
	}
	if !seen["linux/amd64"] || !seen["linux/arm64"] || len(seen) != 2 {
		t.Fatalf("platforms %v, want linux/amd64 and linux/arm64", seen)
	}
}

// extract writes the file name of the image's filesystem to a temporary
// file and checks it is an executable regular file of root's.
func extract(t *testing.T, img v1.Image, name string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s is not in the image", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != name {
			continue
		}
		if h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 || h.Mode&0o022 != 0 || h.Uid != 0 {
			t.Fatalf("%s: type %c mode %o uid %d; want an executable file root owns and others cannot change", name, h.Typeflag, h.Mode, h.Uid)
		}
		path := filepath.Join(t.TempDir(), "kacme")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
}
