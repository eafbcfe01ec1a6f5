//go:build unix

package badgerstore

import (
	"os"
	"syscall"
	"unsafe"
)

// allocPollSlots returns at least n zeroed slots for a pollTable, in
// whole pages mapped for it alone, outside the Go heap (see polltable.go
// for why); from the Go heap when the mapping fails.
func allocPollSlots(n int) ([]pollEntry, bool) {
	const size = int(unsafe.Sizeof(pollEntry{}))
	page := os.Getpagesize()
	bytes := (n*size + page - 1) / page * page
	b, err := syscall.Mmap(-1, 0, bytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]pollEntry, n), false
	}
	// pollEntry holds no pointers, so memory the garbage collector does
	// not know is fine for it.
	return unsafe.Slice((*pollEntry)(unsafe.Pointer(unsafe.SliceData(b))), bytes/size), true
}

func unmapPollSlots(slots []pollEntry) {
	const size = int(unsafe.Sizeof(pollEntry{}))
	page := os.Getpagesize()
	bytes := (len(slots)*size + page - 1) / page * page
	_ = syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(slots))), bytes))
}
