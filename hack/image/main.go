// Command image builds kacme's container image without a Docker daemon
// (make image) with package oci: bin/image (an OCI image layout of the
// linux/amd64 and linux/arm64 index) and bin/kacme-image.tar (its OCI
// archive).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kacme/kacme/hack/image/oci"
)

func main() {
	var o oci.Options
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch")
	flag.StringVar(&o.BinDir, "bin", "bin/platforms", "directory with <os>-<arch>/<binary>")
	flag.StringVar(&o.Binary, "binary", "kacme", "binary file name")
	flag.StringVar(&o.Repo, "repo", "ghcr.io/kacme/kacme", "image repository")
	flag.StringVar(&o.Version, "version", "", "image version (the chart's appVersion)")
	flag.StringVar(&o.Revision, "revision", "", "source revision (git commit)")
	flag.StringVar(&o.Source, "source", "https://github.com/kacme/kacme", "source repository URL")
	flag.StringVar(&o.Out, "out", "bin/image", "OCI image layout directory to write")
	flag.StringVar(&o.Archive, "archive", "bin/kacme-image.tar", "OCI archive to write (empty: none)")
	flag.Parse()
	o.Platforms = strings.Split(*platforms, ",")
	ref, err := oci.Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("built %s for %s\n  OCI layout  %s\n", ref, strings.Join(o.Platforms, ", "), o.Out)
	if o.Archive != "" {
		fmt.Printf("  OCI archive %s\n", o.Archive)
	}
}
