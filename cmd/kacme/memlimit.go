package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is the cgroup v2 file with the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// setMemoryLimit gives the Go runtime a soft memory limit of 90 % of the
// container's (cgroup v2 memory.max), unless GOMEMLIMIT is set or there is
// no limit: without one, the heap may grow to twice what is live before a
// collection, and a server holding 100,000 issuances in its informer cache
// would be killed for memory it does not need. It returns the limit set
// (0: none).
func setMemoryLimit(path string) int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	maxBytes, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64) // "max": no limit
	if err != nil || maxBytes <= 0 {
		return 0
	}
	limit := maxBytes / 10 * 9
	debug.SetMemoryLimit(limit)
	return limit
}
