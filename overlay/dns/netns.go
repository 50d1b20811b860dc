package dns

import (
	"errors"
	"runtime"
	"strconv"
)

// NetNS names the network namespace a resolver listens in.
type NetNS struct {
	path string
	fd   int
	set  bool
}

// NetNSPath names a namespace by a file: /proc/<pid>/ns/net or a bind
// mount of it.
func NetNSPath(path string) NetNS { return NetNS{path: path, set: path != ""} }

// NetNSFD names a namespace by an open descriptor of it. The caller keeps
// it open at least until Start returns.
func NetNSFD(fd int) NetNS { return NetNS{fd: fd, set: fd >= 0} }

func (ns NetNS) String() string {
	switch {
	case !ns.set:
		return "no namespace"
	case ns.path != "":
		return ns.path
	default:
		return "fd " + strconv.Itoa(ns.fd)
	}
}

// do runs fn on an OS thread switched into ns, on a goroutine of its own.
// The thread is switched back to its own namespace before it is unlocked;
// if that fails, the thread stays locked and the runtime discards it when
// the goroutine ends, so no goroutine ever runs in the wrong namespace.
func (ns NetNS) do(fn func() error) error {
	if !ns.set {
		return errors.New("no network namespace given")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := ns.switchAndRun(fn)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
