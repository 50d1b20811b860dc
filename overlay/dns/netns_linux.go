package dns

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// switchAndRun reports whether the thread is in its original namespace
// when it returns.
func (ns NetNS) switchAndRun(fn func() error) (restored bool, err error) {
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	orig, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("open the thread's network namespace: %w", err)
	}
	defer unix.Close(orig)
	target := ns.fd
	if ns.path != "" {
		target, err = unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return true, fmt.Errorf("open network namespace %s: %w", ns.path, err)
		}
		defer unix.Close(target)
	}
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", ns, err))
	}
	return true, ferr
}
