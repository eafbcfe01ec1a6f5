//go:build !unix

package badgerstore

// allocPollSlots returns n zeroed slots from the Go heap, where mapping
// memory is not the unix way (see pollmemory_unix.go).
func allocPollSlots(n int) ([]pollEntry, bool) { return make([]pollEntry, n), false }

func unmapPollSlots([]pollEntry) {}
