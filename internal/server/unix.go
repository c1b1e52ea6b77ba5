package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// listenUnix binds a Unix domain socket at path with permission mode.
//
// A stale socket left by a previous run is removed; a socket another
// process still answers on, or a path that is not a socket, is refused.
// The socket is bound under a temporary name in the same directory,
// chmod-ed, then renamed into place, so it is never connectable at path
// with a wider mode than asked. Close removes it.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	if err := removeStaleSocket(tmp); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	// The listener must not unlink the temporary name on Close: the socket
	// lives at path by then; unixListener.Close removes that instead.
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("chmod unix socket %s: %w", path, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("place unix socket %s: %w", path, err))
	}
	st, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("stat unix socket %s: %w", path, err))
	}
	return &unixListener{UnixListener: l, path: path, st: st}, nil
}

// removeStaleSocket removes path if it is a socket nobody answers on.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unix socket %s: path exists and is not a socket; refusing to replace it", path)
	}
	if c, err := net.DialTimeout("unix", path, 500*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("unix socket %s: another process is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale unix socket %s: %w", path, err)
	}
	return nil
}

// unixListener reports path as its address and removes the socket on Close
// if it is still the one it created.
type unixListener struct {
	*net.UnixListener
	path string
	st   os.FileInfo
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if cur, serr := os.Lstat(l.path); serr == nil && os.SameFile(cur, l.st) {
		_ = os.Remove(l.path)
	}
	return err
}
