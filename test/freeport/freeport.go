// Package freeport hands out loopback ports for servers a test or benchmark
// starts itself (a process that is told its port on the command line).
//
// Such a port is free when picked and bound later, so something else may take
// it in between. Asking the kernel for port 0 makes that likely on a busy
// machine: it answers from the ephemeral range, the same range every outgoing
// connection (to the API server, to etcd, between the test's own processes)
// takes its source port from, and a CI run opens thousands of those. Ports
// are therefore picked at random below the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where the kernel never assigns
// one by itself, never twice by one process, never to two processes at once
// (each reserves its ports with a byte-range lock on one shared file, which the
// kernel drops when the process exits, however it exits), and only when both
// TCP and UDP can bind them at that moment.
package freeport

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// lowest is where the picked range starts: above the well-known and most
// registered ports that local daemons tend to hold.
const lowest = 10000

var (
	mu     sync.Mutex
	handed = map[int]bool{}
	// lockFile is held open for the life of the process: closing any
	// descriptor of it would drop every lock the process holds on it.
	lockFile     *os.File
	lockFileErr  error
	lockFileOnce sync.Once
)

// Pick returns a loopback port that TCP and UDP can bind now, outside the
// kernel's ephemeral range, and not returned before by this process.
func Pick() (int, error) {
	hi := ephemeralStart()
	if hi-lowest < 1000 { // an unusual ip_local_port_range: leave it to the kernel
		return kernelPort()
	}
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := lowest + rand.IntN(hi-lowest)
		if handed[p] || !reserve(p) || !bindable(p) {
			continue
		}
		handed[p] = true
		return p, nil
	}
	return 0, errors.New("freeport: no bindable loopback port below the ephemeral range after 200 tries")
}

// ephemeralStart is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowest || n > 65535 {
		return 32768
	}
	return n
}

// reserve takes port p for this process among every process that uses this
// package (test binaries run in parallel, acmebench beside them). When the
// shared lock file cannot be used it reserves nothing and says yes: the bind
// check still runs.
func reserve(p int) bool {
	lockFileOnce.Do(func() {
		lockFile, lockFileErr = os.OpenFile(filepath.Join(os.TempDir(), "kacme-freeport.lock"), os.O_RDWR|os.O_CREATE, 0o666)
	})
	if lockFileErr != nil {
		return true
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart, Start: int64(p), Len: 1}
	return syscall.FcntlFlock(lockFile.Fd(), syscall.F_SETLK, &lk) == nil
}

func bindable(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	_ = l.Close()
	u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	_ = u.Close()
	return true
}

func kernelPort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if bindable(p) {
			return p, nil
		}
	}
	return 0, errors.New("freeport: no loopback port free for both TCP and UDP")
}
