package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ifNameMax is the longest Linux interface name (IFNAMSIZ-1).
const ifNameMax = 15

// labSeq numbers the labs of this process.
var labSeq atomic.Uint32

// LabOptions configures a Lab.
type LabOptions struct {
	// Binary is the path of the shoal binary (see BuildShoal). It is used
	// for the daemons (Host.Start) and for the CLI (Host.CLI).
	Binary string
	// MTU of the bridge and every veth; 0 means 1500.
	MTU int
	// Env is extra environment ("KEY=value") for daemon and CLI processes,
	// added to the test process's environment.
	Env []string
}

// Lab is a set of test hosts on one private LAN. Create it with NewLab; it
// is torn down when the test that created it ends (or by Close).
type Lab struct {
	// Prefix is the lab's unique name prefix (sh<pid%100000>x<seq>); every
	// namespace of the lab is named <Prefix>-something.
	Prefix string
	// LANNetNS is the namespace holding the bridge br0.
	LANNetNS string
	// Dir holds the hosts' data directories, sockets and logs.
	Dir string

	t    testing.TB
	opts LabOptions

	mu     sync.Mutex
	hosts  []*Host
	netns  []string // created namespaces, LAN first
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// NewLab creates a lab: its namespace with the bridge br0 (up), and its
// directory. Before that it sweeps namespaces and directories left behind
// by harness processes that no longer exist. Teardown is registered with
// t.Cleanup.
func NewLab(t testing.TB, opts LabOptions) *Lab {
	t.Helper()
	if err := resolveTools(); err != nil {
		t.Fatalf("harness: %v (call RequireRoot first to skip)", err)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if err := sweepStale(); err != nil {
		t.Logf("harness: sweeping stale labs: %v", err)
	}
	l := &Lab{t: t, opts: opts}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("harness: lab teardown: %v", err)
		}
	})

	// Pick a prefix whose LAN namespace does not exist yet: two live
	// processes can share pid%100000 when pid_max is large.
	var lastErr error
	for attempt := 0; attempt < 20 && l.Prefix == ""; attempt++ {
		prefix := fmt.Sprintf("sh%dx%d", os.Getpid()%pidModulus, labSeq.Add(1))
		lan := prefix + "-lan"
		if exists(nsPath(lan)) {
			continue
		}
		if err := ipCmd("netns", "add", lan); err != nil {
			lastErr = err
			if exists(nsPath(lan)) {
				continue // lost a race for the name
			}
			t.Fatalf("harness: %v", err)
		}
		l.mu.Lock()
		l.Prefix, l.LANNetNS = prefix, lan
		l.netns = append(l.netns, lan)
		l.mu.Unlock()
	}
	if l.Prefix == "" {
		t.Fatalf("harness: no free lab name: %v", lastErr)
	}

	if err := writeSysctlsIn(l.LANNetNS, nsSysctls); err != nil {
		t.Fatalf("harness: %v", err)
	}
	mtu := strconv.Itoa(opts.MTU)
	for _, args := range [][]string{
		{"-n", l.LANNetNS, "link", "add", "br0", "type", "bridge"},
		{"-n", l.LANNetNS, "link", "set", "dev", "br0", "mtu", mtu, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}

	dir, err := os.MkdirTemp(labBase(), l.Prefix+"-")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	l.mu.Lock()
	l.Dir = dir
	l.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, labMarker), nil, 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, resolvConfName), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return l
}

// AddHost creates host N (N = 1, 2, ...): its namespace with lo up and
// eth0 = 198.18.0.N/16, linked by a veth pair to br0 in the LAN namespace.
// The daemon is not started; see Host.Start.
func (l *Lab) AddHost(t testing.TB) *Host {
	t.Helper()
	h, err := l.addHost()
	if err != nil {
		t.Fatalf("harness: adding host: %v", err)
	}
	return h
}

func (l *Lab) addHost() (*Host, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("lab is closed")
	}
	n := len(l.hosts) + 1
	if n > 254 {
		return nil, errors.New("too many hosts")
	}
	name := "h" + strconv.Itoa(n)
	h := &Host{
		Name:    name,
		IP:      fmt.Sprintf("198.18.0.%d", n),
		NetNS:   l.Prefix + "-" + name,
		DataDir: filepath.Join(l.Dir, name),
		Socket:  filepath.Join(l.Dir, name+".sock"),
		Log:     filepath.Join(l.Dir, name+".log"),
		lab:     l,
	}
	h.bridgePort = l.Prefix + "b" + strconv.Itoa(n)
	if len(h.bridgePort) > ifNameMax {
		// The port lives only inside the LAN namespace, so a short
		// name is unique too.
		h.bridgePort = "b" + strconv.Itoa(n)
	}
	if len(h.Socket) >= 108 {
		return nil, fmt.Errorf("socket path %s too long for a unix socket", h.Socket)
	}
	if err := os.Mkdir(h.DataDir, 0o700); err != nil {
		return nil, err
	}

	if err := ipCmd("netns", "add", h.NetNS); err != nil {
		return nil, err
	}
	l.netns = append(l.netns, h.NetNS)
	if err := writeSysctlsIn(h.NetNS, nsSysctls); err != nil {
		return nil, err
	}
	mtu := strconv.Itoa(l.opts.MTU)
	// The veth pair is created inside the LAN namespace with its peer
	// directly in the host namespace; no link ever exists in the root
	// namespace.
	for _, args := range [][]string{
		{"-n", l.LANNetNS, "link", "add", h.bridgePort, "mtu", mtu, "type", "veth",
			"peer", "name", "eth0", "mtu", mtu, "netns", h.NetNS},
		{"-n", l.LANNetNS, "link", "set", "dev", h.bridgePort, "master", "br0", "up"},
		{"-n", h.NetNS, "link", "set", "dev", "lo", "up"},
		{"-n", h.NetNS, "addr", "add", h.IP + "/16", "dev", "eth0"},
		{"-n", h.NetNS, "link", "set", "dev", "eth0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	l.hosts = append(l.hosts, h)
	return h, nil
}

// Hosts returns the lab's hosts in creation order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Close tears the lab down: it kills every host's daemon (by its process
// group) and waits for it, logs every host's log tail if the test failed,
// deletes the host namespaces, then the LAN namespace, then the lab
// directory (kept, and logged, if SHOAL_KEEP_LAB=1). It runs automatically
// at test cleanup; calling it earlier is allowed and later calls return the
// first result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	hosts := append([]*Host(nil), l.hosts...)
	netns := append([]string(nil), l.netns...)
	dir := l.Dir
	l.mu.Unlock()

	var errs []error
	// Kill everything first, then wait, so hosts die together.
	for _, h := range hosts {
		h.killForClose()
	}
	for _, h := range hosts {
		if err := h.waitForClose(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}

	if l.t.Failed() {
		for _, h := range hosts {
			l.t.Logf("harness: ---- last %d lines of %s (%s) ----\n%s",
				logTailLines, h.Name, h.Log, tailFile(h.Log, logTailLines))
		}
	}

	// Hosts first (their veth pairs go with them), the LAN last.
	for i := len(netns) - 1; i >= 0; i-- {
		if err := ipCmd("netns", "delete", netns[i]); err != nil && exists(nsPath(netns[i])) {
			errs = append(errs, err)
		}
	}

	if dir != "" {
		// Namespaces the daemons bind-mounted in their data directories
		// (overlay sandboxes) would keep the directory busy.
		if err := unmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
		if os.Getenv("SHOAL_KEEP_LAB") == "1" {
			_ = os.WriteFile(filepath.Join(dir, keepMarker), nil, 0o644)
			l.t.Logf("harness: SHOAL_KEEP_LAB=1: lab %s kept in %s", l.Prefix, dir)
		} else if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const logTailLines = 80

// tailFile returns the last n lines of a file (reading at most its last
// 256 KiB).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxRead = 256 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	off := st.Size() - maxRead
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	k, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimRight(string(buf[:k]), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
