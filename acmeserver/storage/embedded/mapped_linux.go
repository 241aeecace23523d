package embedded

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// releaseMapped drops the process's mapping of the first size bytes of the
// store file at data (bbolt's read-only MAP_SHARED mapping) from its
// resident set. For a shared file mapping MADV_DONTNEED loses nothing: the
// next read maps the page again from the page cache or the file.
func releaseMapped(data uintptr, size int64) error {
	if data == 0 || size <= 0 {
		return nil
	}
	// data is the address of bbolt's mapping (DB.Info); read it as a
	// pointer without a uintptr-to-pointer conversion.
	p := *(*unsafe.Pointer)(unsafe.Pointer(&data))
	return unix.Madvise(unsafe.Slice((*byte)(p), size), unix.MADV_DONTNEED)
}
