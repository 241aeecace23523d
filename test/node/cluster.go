package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options configure a cluster.
type Options struct {
	// Bin is the directory hack/node.sh prints: the Kubernetes binaries,
	// containerd, ctr and cni/.
	Bin string
	// Dir and CgroupRoot come from the Namespace the cluster runs in.
	Dir, CgroupRoot string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Cluster is a running node, seen from inside its namespaces.
type Cluster struct {
	o Options
	// Kubeconfig is the admin's kubeconfig (system:masters).
	Kubeconfig string
	// Config is the admin's REST configuration; Client a client with it.
	Config *rest.Config
	Client client.Client
	mu     sync.Mutex
	procs  []*component
}

type component struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Env describes how to run a node inside its namespaces: the re-executed
// process finds its options in these variables.
const (
	EnvBin        = "KACME_NODE_BIN"
	EnvDir        = "KACME_NODE_DIR"
	EnvCgroupRoot = "KACME_NODE_CGROUP_ROOT"
)

// Environment is what a process started with Namespace.Command needs to
// call OptionsFromEnv.
func (n *Namespace) Environment(bin string) []string {
	return []string{EnvBin + "=" + bin, EnvDir + "=" + n.Dir, EnvCgroupRoot + "=" + n.CgroupRoot}
}

// OptionsFromEnv reads the options Environment passed; ok is false outside a node's namespaces.
func OptionsFromEnv() (Options, bool) {
	o := Options{Bin: os.Getenv(EnvBin), Dir: os.Getenv(EnvDir), CgroupRoot: os.Getenv(EnvCgroupRoot)}
	return o, o.Bin != "" && o.Dir != "" && o.CgroupRoot != ""
}

func (c *Cluster) logf(format string, args ...any) {
	if c.o.Log != nil {
		_, _ = fmt.Fprintf(c.o.Log, "node: "+format+"\n", args...)
	}
}

func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.o.Dir}, parts...)...)
}

// Start brings the node up: PKI, etcd, the API server, the controller
// manager and scheduler, containerd, the kubelet and kube-proxy, and waits
// until the node is Ready. The caller stops it with Stop (and the Namespace
// removes whatever is left).
func Start(ctx context.Context, o Options) (*Cluster, error) {
	c := &Cluster{o: o, Kubeconfig: filepath.Join(o.Dir, "pki", "admin.conf")}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	start := time.Now()
	if err := pki(c.path("pki")); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := c.writeConfigs(); err != nil {
		return nil, err
	}
	pk := func(f string) string { return c.path("pki", f) }
	if err := c.start("etcd", c.bin("etcd"), "--data-dir", c.path("etcd"), "--name", "kacme-node",
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "kacme-node=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level", "warn"); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver", c.bin("kube-apiserver"), "--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0", "--secure-port", "6443", "--advertise-address", NodeIP,
		"--service-cluster-ip-range", ServiceCIDR, "--client-ca-file", pk("ca.crt"),
		"--tls-cert-file", pk("apiserver.crt"), "--tls-private-key-file", pk("apiserver.key"),
		"--service-account-key-file", pk("sa.pub"), "--service-account-signing-key-file", pk("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--kubelet-client-certificate", pk("apiserver-kubelet-client.crt"), "--kubelet-client-key", pk("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP,Hostname", "--allow-privileged=true",
		"--cert-dir", c.path("apiserver")); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.Config = cfg
	if err := c.waitHealthy(ctx, "kube-apiserver", "/readyz", 2*time.Minute); err != nil {
		return nil, err
	}
	if c.Client, err = client.New(cfg, client.Options{}); err != nil {
		return nil, err
	}
	if err := c.start("kube-controller-manager", c.bin("kube-controller-manager"), "--kubeconfig", pk("controller-manager.conf"),
		"--authentication-kubeconfig", pk("controller-manager.conf"), "--authorization-kubeconfig", pk("controller-manager.conf"),
		"--bind-address", "127.0.0.1", "--leader-elect=false", "--use-service-account-credentials",
		"--service-account-private-key-file", pk("sa.key"), "--root-ca-file", pk("ca.crt"),
		"--cluster-signing-cert-file", pk("ca.crt"), "--cluster-signing-key-file", pk("ca.key"),
		"--service-cluster-ip-range", ServiceCIDR, "--controllers", "*,-nodeipam"); err != nil {
		return nil, err
	}
	if err := c.start("kube-scheduler", c.bin("kube-scheduler"), "--kubeconfig", pk("scheduler.conf"),
		"--authentication-kubeconfig", pk("scheduler.conf"), "--authorization-kubeconfig", pk("scheduler.conf"),
		"--bind-address", "127.0.0.1", "--leader-elect=false"); err != nil {
		return nil, err
	}
	if err := c.start("containerd", c.bin("containerd"), "--config", c.path("containerd.toml")); err != nil {
		return nil, err
	}
	if err := c.waitFile(ctx, "/run/containerd/containerd.sock", time.Minute); err != nil {
		return nil, err
	}
	if err := c.importPause(ctx); err != nil {
		return nil, err
	}
	if err := c.cgroupRoot(); err != nil {
		return nil, err
	}
	if err := c.start("kubelet", c.bin("kubelet"), "--config", c.path("kubelet.yaml"), "--kubeconfig", pk("kubelet.conf"),
		"--hostname-override", NodeName, "--node-ip", NodeIP, "--root-dir", c.path("kubelet"),
		"--cert-dir", c.path("kubelet", "pki")); err != nil {
		return nil, err
	}
	if err := c.start("kube-proxy", c.bin("kube-proxy"), "--config", c.path("kube-proxy.yaml"), "--hostname-override", NodeName); err != nil {
		return nil, err
	}
	if err := c.waitNodeReady(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	c.logf("node %s Ready after %s", NodeName, time.Since(start).Round(100*time.Millisecond))
	ok = true
	return c, nil
}

// cgroupRoot creates the kubelet's cgroup root in every hierarchy (the
// kubelet requires it to exist); a new cpuset cgroup starts with no CPUs and
// memory nodes, so it gets its parent's.
func (c *Cluster) cgroupRoot() error {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range entries {
		parent := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(parent, "cgroup.procs")); err != nil {
			continue // not a hierarchy
		}
		dir := filepath.Join(parent, c.o.CgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", dir, err)
				}
			}
		}
	}
	return nil
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.o.Bin, name) }

// start runs a component until Stop; its output goes to logs/<name>.log.
func (c *Cluster) start(name, path string, args ...string) error {
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		return err
	}
	out, err := os.Create(c.path("logs", name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// containerd finds its shim and runc, the kubelet iptables and mount, in PATH.
	cmd.Env = append(os.Environ(), "PATH="+c.o.Bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	// A component must not outlive the process that runs the node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &component{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	c.logf("started %s", name)
	return nil
}

// Exited names the components that stopped although Stop was not called.
func (c *Cluster) Exited() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.procs {
		select {
		case <-p.done:
			out = append(out, fmt.Sprintf("%s (%v)", p.name, p.err))
		default:
		}
	}
	return out
}

// Stop stops the components, in reverse order of their start.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.procs = nil
	c.mu.Unlock()
	slices.Reverse(procs)
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// Logs is the end of every component's log (for a failed test's output).
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	entries, _ := os.ReadDir(c.path("logs"))
	for _, e := range entries {
		data, _ := os.ReadFile(c.path("logs", e.Name()))
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines) ---\n%s\n", e.Name(), len(all), strings.Join(all, "\n"))
	}
	return b.String()
}

func (c *Cluster) waitFile(ctx context.Context, path string, d time.Duration) error {
	return c.poll(ctx, path, d, func() error {
		_, err := os.Stat(path)
		return err
	})
}

// poll calls ok until it returns nil, a component exits, or d passes.
func (c *Cluster) poll(ctx context.Context, what string, d time.Duration, ok func() error) error {
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = ok(); err == nil {
			return nil
		}
		if gone := c.Exited(); len(gone) > 0 {
			return fmt.Errorf("waiting for %s: %s exited (see its log below)\n%s", what, strings.Join(gone, ", "), c.Logs(40))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %v\n%s", what, err, c.Logs(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) waitHealthy(ctx context.Context, what, path string, d time.Duration) error {
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	hc.Timeout = 5 * time.Second
	return c.poll(ctx, what, d, func() error {
		r, err := hc.Get(APIServer + path)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", path, r.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	})
}

func (c *Cluster) waitNodeReady(ctx context.Context, d time.Duration) error {
	return c.poll(ctx, "node "+NodeName+" Ready", d, func() error {
		var n corev1.Node
		if err := c.Client.Get(ctx, client.ObjectKey{Name: NodeName}, &n); err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("condition Ready is %s: %s", cond.Status, cond.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
}
