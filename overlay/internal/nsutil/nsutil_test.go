package nsutil

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// threadsOutside lists the process's threads whose network namespace differs
// from want (a /proc …/ns/net link target).
func threadsOutside(want string) []string {
	var bad []string
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		got, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net")
		if err == nil && got != want {
			bad = append(bad, e.Name())
		}
	}
	return bad
}

func TestDoRunsInsideAndRestores(t *testing.T) {
	requireRoot(t)
	want, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := NewUnnamed()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Do(ns, func() error {
				cur, err := netns.Get()
				if err != nil {
					return err
				}
				defer cur.Close()
				if !cur.Equal(ns) {
					return errors.New("fn ran outside the namespace")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sentinel := errors.New("from fn")
	if err := Do(ns, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
	if bad := threadsOutside(want); len(bad) > 0 {
		t.Fatalf("threads left in another namespace: %v", bad)
	}
}

func TestCreateOpenRemove(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ns1")
	h, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !IsMountedNetNS(path) {
		t.Fatal("not mounted after Create")
	}
	if _, err := Create(path); err == nil {
		t.Fatal("Create over an existing namespace succeeded")
	}
	h2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !h2.Equal(h) {
		t.Fatal("Open gave another namespace")
	}
	h2.Close()
	if _, err := Open(dir); err == nil {
		t.Fatal("Open of a directory succeeded")
	}
	if err := Sysctl(h, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadSysctl(h, "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Fatalf("ip_forward in the new namespace: %q, %v", v, err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file left: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestSharedMount(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountDir(dir) })
	for i := 0; i < 2; i++ {
		if err := EnsureSharedMount(dir); err != nil {
			t.Fatal(err)
		}
		if ok, err := IsMountPoint(dir); err != nil || !ok {
			t.Fatalf("not a mount point: %v", err)
		}
	}
	if err := UnmountDir(dir); err != nil {
		t.Fatal(err)
	}
	if ok, _ := IsMountPoint(dir); ok {
		t.Fatal("still a mount point")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/bad\9`: `/bad\9`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
