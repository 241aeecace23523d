// Package node runs a real single-node Kubernetes cluster — kube-apiserver,
// etcd, kube-controller-manager, kube-scheduler, containerd, the kubelet,
// kube-proxy and CoreDNS as a pod — inside a network and mount namespace it
// creates, and tears all of it down again. The real-node e2e (test/e2e) and
// make node use it; hack/node.sh builds the binaries (pinned versions,
// cached).
//
// Two halves: Namespace, from the machine's own namespaces, creates the
// namespaces (a holder process: unshare), prepares them (a bridge with the
// node's address, a private /run, the cluster's resolv.conf) and removes
// everything at the end (every process in them, the pods' cgroups, the state
// directory); Cluster, from a process inside them (Namespace.Command), starts
// and stops the components. Nothing is ever configured in the machine's own
// network namespace: no route, no bridge, no iptables rule.
package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The node's addresses.
const (
	// NodeIP is the node's address, on a bridge in the namespace.
	NodeIP = "10.200.0.1"
	// PodCIDR and ServiceCIDR are the cluster's ranges; DNSIP is the
	// cluster DNS Service's address (CoreDNS).
	PodCIDR     = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/16"
	DNSIP       = "10.96.0.10"
	// APIServer is the API server's URL (inside the namespace).
	APIServer = "https://" + NodeIP + ":6443"
	// NodeName is the node's name.
	NodeName = "kacme-node"
)

// hostDirs are paths on the machine that components use whatever their
// flags say (the kubelet's /var/log/containers, libcni's cache); the
// namespace mounts a private tmpfs on each (creating the mount point if it
// is missing, and removing it at the end).
var hostDirs = []string{"/run", "/var/lib/cni", "/var/log/containers"}

// Namespace is a network and mount namespace held open by a process.
type Namespace struct {
	// Dir is the state directory (configuration, certificates, etcd, the
	// kubelet's and containerd's data, logs); removed by Close.
	Dir string
	// CgroupRoot is the kubelet's cgroup root (pods' cgroups live below it).
	CgroupRoot string
	holder     *exec.Cmd
	created    []string // mount points Close removes
	closed     bool
}

// Check says why this machine cannot run a node, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (network and mount namespaces, cgroups, iptables)")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip", "iptables", "runc", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("a real node needs %s (make test installs it as root: Debian packages util-linux, iproute2, iptables, runc)", tool)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return errors.New("a real node needs cgroups mounted at /sys/fs/cgroup")
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "true").CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create network and mount namespaces here (unshare: %v: %s)", err, bytes.TrimSpace(out))
	}
	return nil
}

// Create makes the namespaces and prepares them.
func Create() (*Namespace, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	// A short directory: unix socket paths below it must fit in 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "kn-")
	if err != nil {
		return nil, err
	}
	n := &Namespace{Dir: dir, CgroupRoot: "/kacme-" + strings.TrimPrefix(filepath.Base(dir), "kn-")}
	// unshare enters new namespaces and execs sleep, which holds them.
	n.holder = exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "infinity")
	n.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.holder.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("unshare: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !nsDiffers(n.holder.Process.Pid, "net") || !isSleep(n.holder.Process.Pid) {
		if time.Now().After(deadline) {
			n.Close()
			return nil, errors.New("unshare did not start its holder process")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.prepare(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Pid is the process whose namespaces the node lives in (nsenter -t Pid -n -m).
func (n *Namespace) Pid() int { return n.holder.Process.Pid }

func isSleep(pid int) bool {
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(comm)) == "sleep"
}

func nsDiffers(pid int, ns string) bool {
	a, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	b, err2 := os.Readlink("/proc/self/ns/" + ns)
	return err1 == nil && err2 == nil && a != b
}

// Command runs name inside the namespaces, in the caller's working directory.
func (n *Namespace) Command(name string, args ...string) *exec.Cmd {
	wd, _ := os.Getwd()
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(n.Pid()), "-n", "-m", "--wd=" + wd, "--", name}, args...)...)
}

func (n *Namespace) run(name string, args ...string) error {
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// prepare sets up the namespaces: loopback, the node's bridge and address
// and a default route through it (so that Service addresses route to where
// kube-proxy's rules rewrite them), forwarding and bridge netfilter, private
// mounts on hostDirs, and the cluster's DNS for processes on the node.
func (n *Namespace) prepare() error {
	resolv := filepath.Join(n.Dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("search svc.cluster.local cluster.local\nnameserver "+DNSIP+"\noptions ndots:5\n"), 0o644); err != nil {
		return err
	}
	for _, d := range hostDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			n.created = append(n.created, d)
		}
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "node0", "type", "bridge"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", "node0"},
		{"ip", "link", "set", "node0", "up"},
		{"ip", "route", "add", "default", "dev", "node0"},
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	}
	for _, d := range hostDirs {
		steps = append(steps, []string{"mount", "-n", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", d})
	}
	// -n: libmount keeps no record of these in the machine's /run/mount.
	steps = append(steps, []string{"mount", "-n", "--bind", resolv, "/etc/resolv.conf"})
	for _, s := range steps {
		if err := n.run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	// Pod-to-Service traffic between pods on the one bridge passes
	// iptables only with bridge netfilter (br_netfilter; per namespace).
	if err := n.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"); err != nil {
		return fmt.Errorf("bridge netfilter (the br_netfilter module) is needed for Services between pods: %w", err)
	}
	return nil
}

// Close stops every process in the namespaces and every container of the
// node, removes the pods' cgroups, the state directory and the mount points
// it created. It is safe to call more than once and after a failed step.
func (n *Namespace) Close() []error {
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	if n.holder.Process != nil {
		pid := n.holder.Process.Pid
		netns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		mntns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		// Components first (SIGTERM, then SIGKILL), then the containers
		// (their own namespaces, below the node's cgroup root).
		inNS := func() []int {
			return procsWhere(func(p int) bool {
				if p == pid {
					return false
				}
				a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p))
				b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p))
				return a == netns || b == mntns
			})
		}
		signalAll(inNS(), syscall.SIGTERM)
		waitGone(inNS, 10*time.Second)
		for range 20 {
			pids := append(inNS(), n.cgroupProcs()...)
			if len(pids) == 0 {
				break
			}
			signalAll(pids, syscall.SIGKILL)
			time.Sleep(100 * time.Millisecond)
		}
		if rest := append(inNS(), n.cgroupProcs()...); len(rest) > 0 {
			errs = append(errs, fmt.Errorf("processes still running after SIGKILL: %v", rest))
		}
	}
	if n.holder.Process != nil {
		_ = n.holder.Process.Kill()
		_ = n.holder.Wait()
	}
	errs = append(errs, n.removeCgroups()...)
	// The namespaces' mounts went with their last process; what is left
	// in Dir is plain files (retry: a mount may take a moment to go).
	var err error
	for range 50 {
		if err = os.RemoveAll(n.Dir); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", n.Dir, err))
	}
	slices.Reverse(n.created)
	for _, d := range n.created {
		if err := os.Remove(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// cgroupProcs are the processes in the node's cgroups (every hierarchy).
func (n *Namespace) cgroupProcs() []int {
	var pids []int
	for _, root := range n.cgroupDirs() {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// cgroupDirs are the node's cgroup roots in each mounted hierarchy.
func (n *Namespace) cgroupDirs() []string {
	var out []string
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || (fields[sep+1] != "cgroup" && fields[sep+1] != "cgroup2") {
			continue
		}
		dir := filepath.Join(fields[4], n.CgroupRoot)
		if _, err := os.Stat(dir); err == nil {
			out = append(out, dir)
		}
	}
	return out
}

// removeCgroups removes the node's cgroups, deepest first.
func (n *Namespace) removeCgroups() []error {
	var errs []error
	for _, root := range n.cgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			var err error
			for range 20 { // a killed process leaves its cgroup a moment later
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errs
}

func procsWhere(match func(pid int) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if match(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func signalAll(pids []int, sig syscall.Signal) {
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

func waitGone(list func() []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && len(list()) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
}
