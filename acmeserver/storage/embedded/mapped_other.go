//go:build !linux

package embedded

// releaseMapped does nothing where madvise is not used: the kernel
// reclaims the mapped pages under memory pressure.
func releaseMapped(uintptr, int64) error { return nil }
