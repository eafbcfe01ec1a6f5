//go:build linux || darwin || freebsd || dragonfly

package badgerstore

import (
	"io/fs"
	"syscall"
)

// FreeSpace is the space left on the filesystem that holds dir for a
// process without root's reserve: Caddy should leave that to the system.
func FreeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	// Bavail is signed on some systems, negative when the reserve is in use.
	return uint64(max(int64(st.Bavail), 0)) * uint64(st.Bsize), nil
}

// allocated is the disk a file takes: its blocks, not its size.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
