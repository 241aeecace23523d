// Package oci builds container images of static binaries without a Docker
// daemon: one binary per platform, each in a one-layer OCI image that runs
// it as a non-root user, joined in one OCI image index, written as an OCI
// image layout directory and as an OCI archive (a tar of that layout) that
// `docker load`, `ctr images import`, `kind load image-archive` and `crane
// push` accept. go-containerregistry builds the images, the index and the
// layout. make image uses it for kacme (hack/image); the real-node test for
// the images it runs beside kacme's.
package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say what to build.
type Options struct {
	// BinDir holds <os>-<arch>/<Binary> for every platform.
	BinDir    string
	Platforms []string // os/arch
	// Binary is the file name in BinDir (default kacme); Entrypoint where it
	// goes in the image (default /kacme). Tests build other images
	// (the pause container, CoreDNS, a test client) with the same code.
	Binary, Entrypoint string
	// User runs the entrypoint (default 65532:65532).
	User string
	// Repo, Version and Revision name the image (<repo>:<version>) and fill
	// its org.opencontainers.image.* labels.
	Repo, Version, Revision, Source string
	// Out is the OCI image layout directory written (replaced); Archive, when
	// set, the tar of it.
	Out, Archive string
	// Created is the image's creation time (default: the Unix epoch, so that a
	// build from the same binaries gives the same digests).
	Created time.Time
}

// User is the numeric user and group the kacme image runs as (nobody's, as
// in distroless images): not root, and the chart's runAsUser.
const User = "65532:65532"

// Entrypoint is where the kacme binary is in its image.
const Entrypoint = "/kacme"

func (o *Options) defaults() {
	if o.Binary == "" {
		o.Binary = "kacme"
	}
	if o.Entrypoint == "" {
		o.Entrypoint = "/" + o.Binary
	}
	if o.User == "" {
		o.User = User
	}
}

// Build writes the image index and returns its reference (<repo>:<version>).
func Build(o Options) (string, error) {
	o.defaults()
	if o.Version == "" {
		return "", errors.New("-version is required (make image passes the chart's appVersion)")
	}
	ref := o.Repo + ":" + o.Version
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, p := range o.Platforms {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok {
			return "", fmt.Errorf("platform %q is not os/arch", p)
		}
		img, err := platformImage(o, osName, arch)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: osName, Architecture: arch}}})
	}
	idx = mutate.Annotations(idx, annotations(o)).(v1.ImageIndex)
	if err := os.RemoveAll(o.Out); err != nil {
		return "", err
	}
	lp, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return "", err
	}
	// index.json names the image as container runtimes and docker load read it.
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref})); err != nil {
		return "", err
	}
	if o.Archive != "" {
		if err := tarDir(o.Out, o.Archive); err != nil {
			return "", err
		}
	}
	return ref, nil
}

func annotations(o Options) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.title":       "kacme",
		"org.opencontainers.image.description": "A private ACME certificate authority for Kubernetes",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

// platformImage is the one-layer image of the platform's binary.
func platformImage(o Options, osName, arch string) (v1.Image, error) {
	bin, err := os.ReadFile(filepath.Join(o.BinDir, osName+"-"+arch, o.Binary))
	if err != nil {
		return nil, fmt.Errorf("the %s/%s binary (make image builds it): %w", osName, arch, err)
	}
	layer, err := binaryLayer(bin, o.Entrypoint, o.Created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = osName, arch, v1.Time{Time: o.Created.UTC()}
	cf.Config = v1.Config{Entrypoint: []string{o.Entrypoint}, User: o.User, WorkingDir: "/", Labels: annotations(o)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// binaryLayer is a layer with the binary at path, executable, owned by root
// (the user it runs as may execute it, not change it).
func binaryLayer(bin []byte, path string, mtime time.Time) (v1.Layer, error) {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	if err := w.WriteHeader(&tar.Header{Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: int64(len(bin)),
		ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	data := b.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// tarDir writes the files of dir, sorted, into a tar at path (an OCI
// archive is a tar of an OCI image layout).
func tarDir(dir, path string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := tar.NewWriter(f)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			_ = f.Close()
			return err
		}
		if err := w.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			_ = f.Close()
			return err
		}
		if _, err := w.Write(data); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
