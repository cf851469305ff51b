//go:build !linux

package auditlog

import (
	"io/fs"
	"os"
	"syscall"
)

func fromInfo(fi fs.FileInfo) (fileID, int64, fs.FileMode) {
	var id fileID
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return id, fi.Size(), fi.Mode().Type()
}

func lstatID(path string) (fileID, int64, fs.FileMode, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileID{}, 0, 0, err
	}
	id, size, mode := fromInfo(fi)
	return id, size, mode, nil
}

func fstatID(f *os.File) (fileID, int64, fs.FileMode, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, 0, 0, err
	}
	id, size, mode := fromInfo(fi)
	return id, size, mode, nil
}
