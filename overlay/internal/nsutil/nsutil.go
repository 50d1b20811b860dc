// Package nsutil runs code inside Linux network namespaces without leaving
// any OS thread in the wrong one, and creates, opens and removes network
// namespaces bind-mounted at arbitrary paths.
//
// Every function that has to switch a thread's network namespace does so on
// a fresh goroutine locked to its OS thread, and unlocks that thread only
// after switching it back. If switching back fails, the thread stays locked
// and the Go runtime destroys it when the goroutine returns, so no other
// goroutine is ever scheduled on a thread in a foreign namespace.
//
// It imports nothing from this module.
package nsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Open opens the network namespace at path (a bind mount, /proc/<pid>/ns/net
// or /proc/self/fd/<n>) and checks that it is one.
func Open(path string) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %s: %w", path, err)
	}
	if err := checkNetNS(int(h)); err != nil {
		h.Close()
		return netns.None(), fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return h, nil
}

// Current opens the network namespace of the calling thread.
func Current() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("open current network namespace: %w", err)
	}
	return h, nil
}

// Dup returns a second handle on the same namespace, to be closed separately.
func Dup(h netns.NsHandle) (netns.NsHandle, error) {
	fd, err := unix.FcntlInt(uintptr(h), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("dup network namespace handle: %w", err)
	}
	return netns.NsHandle(fd), nil
}

func checkNetNS(fd int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type != unix.NSFS_MAGIC {
		return errors.New("not a namespace file")
	}
	return nil
}

// IsMountedNetNS reports whether path is a bind mount of a namespace (as
// opposed to the empty file left behind when its mount is gone).
func IsMountedNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Do runs fn on an OS thread that has joined ns, and returns fn's error.
// Sockets fn opens stay in ns and may be used from any goroutine afterwards.
// fn must not start goroutines that expect to run in ns.
func Do(ns netns.NsHandle, fn func() error) error {
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{fmt.Errorf("open thread's network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns failed, so the thread never left its namespace.
			runtime.UnlockOSThread()
			done <- result{fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime destroys it when this
			// goroutine returns instead of reusing it.
			done <- result{errors.Join(ferr, fmt.Errorf("return to original network namespace: %w", err))}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ferr}
	}()
	return (<-done).err
}

// NewHandle returns a netlink handle whose sockets (route, xfrm and
// netfilter families) live in ns.
func NewHandle(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := Do(ns, func() (err error) {
		h, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return h, nil
}

// Create makes a new network namespace and bind-mounts it at path (which
// must not exist yet; its directory must). It returns an open handle.
func Create(path string) (netns.NsHandle, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("create network namespace %s: %w", path, err)
	}
	f.Close()

	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), fmt.Errorf("unshare: %w", err)}
			return
		}
		var h netns.NsHandle = netns.None()
		merr := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if merr == nil {
			h, merr = netns.Get()
		}
		if err := netns.Set(orig); err != nil {
			// The thread is stuck in the new namespace: keep it locked so it
			// dies with this goroutine.
			done <- result{h, errors.Join(merr, fmt.Errorf("return to original network namespace: %w", err))}
			return
		}
		runtime.UnlockOSThread()
		done <- result{h, merr}
	}()
	r := <-done
	if r.err != nil {
		if r.h.IsOpen() {
			r.h.Close()
		}
		_ = unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return netns.None(), fmt.Errorf("create network namespace %s: %w", path, r.err)
	}
	return r.h, nil
}

// Remove unmounts the namespace bind mount at path and deletes the file.
// The namespace itself goes away once nothing else holds it. A missing path
// is not an error.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace file %s: %w", path, err)
	}
	return nil
}

// EnsureSharedMount makes dir a mount point with shared propagation, so that
// namespace bind mounts made under it later and removed later also disappear
// from mount namespaces copied in between (a container's, for instance);
// otherwise such copies would keep the namespaces, and the VXLAN devices in
// them, alive.
func EnsureSharedMount(dir string) error {
	mounted, err := IsMountPoint(dir)
	if err != nil {
		return err
	}
	if !mounted {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s onto itself: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// UnmountDir undoes EnsureSharedMount. It is not an error if dir is not a
// mount point.
func UnmountDir(dir string) error {
	mounted, err := IsMountPoint(dir)
	if err != nil || !mounted {
		return err
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// IsMountPoint reports whether dir is listed as a mount point of the calling
// process's mount namespace.
func IsMountPoint(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	points, err := MountPoints()
	if err != nil {
		return false, err
	}
	for _, p := range points {
		if p == abs {
			return true, nil
		}
	}
	return false, nil
}

// MountPoints lists the mount points of the calling process's mount
// namespace.
func MountPoints() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out = append(out, unescapeMountinfo(f[4]))
	}
	return out, nil
}

// unescapeMountinfo decodes the octal escapes (\040 for a space, …) used in
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Sysctl writes value to the sysctl key (dotted or slashed, e.g.
// "net.ipv4.ip_forward") as seen from namespace ns.
func Sysctl(ns netns.NsHandle, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if strings.Contains(key, "/") {
		path = "/proc/sys/" + key
	}
	err := Do(ns, func() error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// ReadSysctl reads the sysctl key as seen from namespace ns.
func ReadSysctl(ns netns.NsHandle, key string) (string, error) {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var out []byte
	err := Do(ns, func() (err error) {
		out, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// NewUnnamed creates a network namespace that is not mounted anywhere: it
// lives as long as the returned handle (or anything else inside it).
func NewUnnamed() (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), fmt.Errorf("unshare: %w", err)}
			return
		}
		h, gerr := netns.Get()
		if err := netns.Set(orig); err != nil {
			// Stuck in the new namespace: the thread dies with this goroutine.
			done <- result{h, errors.Join(gerr, fmt.Errorf("return to original network namespace: %w", err))}
			return
		}
		runtime.UnlockOSThread()
		done <- result{h, gerr}
	}()
	r := <-done
	if r.err != nil {
		if r.h.IsOpen() {
			r.h.Close()
		}
		return netns.None(), fmt.Errorf("create network namespace: %w", r.err)
	}
	return r.h, nil
}
