//go:build !(linux || darwin || freebsd || dragonfly)

package badgerstore

import (
	"errors"
	"io/fs"
)

// FreeSpace is not known on this system: the free-space guard stays off.
func FreeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }

// allocated is the disk a file takes, as far as this system tells.
func allocated(info fs.FileInfo) int64 { return info.Size() }
