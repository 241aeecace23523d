package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kacme/kacme/hack/image/oci"
)

// PauseImage is the pod sandbox image: a static binary that waits for a
// signal, built and imported by Start (no registry is reachable).
const PauseImage = "kacme.test/pause:1"

// writeConfigs writes containerd's, the kubelet's, kube-proxy's and the CNI
// configuration.
func (c *Cluster) writeConfigs() error {
	for _, d := range []string{"containerd", "kubelet", "cni/net.d", "cni/ipam", "pod-logs"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		// containerd 2.x (config version 3). restrict_oom_score_adj: this
		// VM withholds CAP_SYS_RESOURCE, and without it every sandbox fails
		// ("can't get final child's PID from pipe"). Its state, sockets and
		// the pods' network namespaces are under the namespace's private /run.
		"containerd.toml": fmt.Sprintf(`version = 3
root = %q
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
`, c.path("containerd"), filepath.Join(c.o.Bin, "cni"), c.path("cni", "net.d"), PauseImage),

		"cni/net.d/10-kacme.conflist": fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "kacme",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, PodCIDR, c.path("cni", "ipam")),

		// failCgroupV1: this machine's cgroups are v1 (v1.37 still runs on
		// them when told to). cgroupRoot keeps the pods' cgroups apart,
		// for Namespace.Close to find and remove.
		"kubelet.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: %q
tlsPrivateKeyFile: %q
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %q
podLogsDir: %q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
`, c.path("pki", "ca.crt"), NodeIP, c.path("pki", "kubelet-serving.crt"), c.path("pki", "kubelet-serving.key"),
			c.o.CgroupRoot, DNSIP, c.path("kubelet-resolv.conf"), c.path("pod-logs")),

		"kubelet-resolv.conf": "nameserver " + DNSIP + "\n",

		// conntrack: leave the (machine-wide) table size and timeouts alone.
		"kube-proxy.yaml": fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, c.path("pki", "kube-proxy.conf"), PodCIDR),
	}
	for name, content := range files {
		if err := os.WriteFile(c.path(name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// importPause builds the sandbox image and imports it.
func (c *Cluster) importPause(ctx context.Context) error {
	bin, err := BuildGo(ctx, c.path("build"), "", "./test/node/pause", "pause", "")
	if err != nil {
		return err
	}
	return c.ImportBinary(ctx, bin, PauseImage, "65535:65535")
}

// BuildGo builds a static binary of pkg (an import path or a directory
// relative to srcDir; srcDir "" is the kacme repository) for this machine's
// platform into dir/name.
func BuildGo(ctx context.Context, dir, srcDir, pkg, name, ldflags string) (string, error) {
	if srcDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		srcDir = root
	}
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w "+ldflags, "-o", out, pkg)
	cmd.Dir = srcDir
	// Inside the node's namespace there is no network: everything comes
	// from the module cache the build outside filled.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOPROXY=off", "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// RepoRoot is the kacme module's directory (found from the working directory up).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/kacme/kacme\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the kacme repository")
		}
		dir = parent
	}
}

// ImportBinary builds a one-binary image (this machine's platform) named
// ref (<repo>:<tag>) with the oci package, as make image builds kacme's,
// and imports it into the node's containerd.
func (c *Cluster) ImportBinary(ctx context.Context, binary, ref, user string) error {
	repo, tag, ok := strings.Cut(ref, ":")
	if !ok {
		return fmt.Errorf("image %q has no tag", ref)
	}
	name := filepath.Base(binary)
	dir, err := os.MkdirTemp(c.path(), "image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	platDir := filepath.Join(dir, "bin", "linux-"+runtime.GOARCH)
	if err := os.MkdirAll(platDir, 0o755); err != nil {
		return err
	}
	if err := os.Link(binary, filepath.Join(platDir, name)); err != nil {
		if err := copyFile(binary, filepath.Join(platDir, name)); err != nil {
			return err
		}
	}
	if _, err := oci.Build(oci.Options{BinDir: filepath.Join(dir, "bin"), Platforms: []string{"linux/" + runtime.GOARCH},
		Binary: name, User: user, Repo: repo, Version: tag, Out: filepath.Join(dir, "layout"), Archive: filepath.Join(dir, "image.tar")}); err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	return c.ImportImage(ctx, filepath.Join(dir, "image.tar"))
}

// ImportImage imports an OCI archive (every platform in it) into the node's
// containerd, where the kubelet finds it.
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	cmd := exec.CommandContext(ctx, c.bin("ctr"), "--address", "/run/containerd/containerd.sock", "--namespace", "k8s.io",
		"images", "import", "--all-platforms", archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import %s: %v\n%s", archive, err, out)
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
