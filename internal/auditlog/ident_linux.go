package auditlog

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// statx identifies a file by device, inode and birth time: inodes of
// deleted rotations are reused at once on ext4, and a birth time tells the
// new file from the old one.
func statx(dirfd int, path string, flags int) (fileID, int64, fs.FileMode, error) {
	var st unix.Statx_t
	if err := unix.Statx(dirfd, path, flags|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st); err != nil {
		return fileID{}, 0, 0, &fs.PathError{Op: "statx", Path: path, Err: err}
	}
	id := fileID{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		id.born = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	var mode fs.FileMode
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		mode = fs.ModeDir
	case unix.S_IFLNK:
		mode = fs.ModeSymlink
	default:
		mode = fs.ModeIrregular
	}
	return id, int64(st.Size), mode, nil
}

// lstatID is Lstat: a symlink is reported as one.
func lstatID(path string) (fileID, int64, fs.FileMode, error) {
	return statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW)
}

// fstatID identifies an open file.
func fstatID(f *os.File) (fileID, int64, fs.FileMode, error) {
	return statx(int(f.Fd()), "", unix.AT_EMPTY_PATH)
}
