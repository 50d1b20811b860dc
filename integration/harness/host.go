package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// startTimeout bounds how long Start waits for the daemon's socket.
	startTimeout = 20 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 10 * time.Second
	// reapTimeout bounds the wait for a SIGKILLed process to be reaped.
	reapTimeout = 10 * time.Second
	// cliTimeout is MustCLI's deadline.
	cliTimeout = 60 * time.Second
	// pollInterval is the period of readiness polls.
	pollInterval = 50 * time.Millisecond
	// nftTable is the nftables table Block manages in a host namespace.
	nftTable = "shoal_harness"
)

// Host is one test machine: a network namespace on the lab's LAN and, once
// started, a shoal daemon running in it.
type Host struct {
	Name    string // "h1", "h2", ...; the daemon's --node-name
	IP      string // "198.18.0.N" on eth0
	NetNS   string // network namespace name (/run/netns/<NetNS>)
	DataDir string // --data-dir; kept across restarts
	Socket  string // unix socket path of the daemon's API (--host unix://...)
	Log     string // daemon stdout+stderr, appended across restarts

	lab        *Lab
	bridgePort string // veth end enslaved to br0, in the LAN namespace

	mu      sync.Mutex
	proc    *proc
	extra   []string        // extra daemon args of the last start
	blocked map[string]bool // peer IPs dropped by Block
}

// proc is one daemon process. The leader is the nsenter-exec'd daemon; it
// leads its own process group.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process is reaped

	mu      sync.Mutex
	exited  bool // leader exited; the pid may be reaped from now on
	waitErr error
}

// wait reaps the process. It first waits for the exit without reaping, so
// that while the group is killed the leader is still a zombie holding its
// pid (and process group id) and neither can have been reused.
func (p *proc) wait(logPath string) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.mu.Lock()
	p.exited = true
	// Leftover members of the group (children the daemon forked).
	_ = unix.Kill(-p.pid, unix.SIGKILL)
	p.mu.Unlock()
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	p.mu.Unlock()
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	appendLog(logPath, fmt.Sprintf("=== harness %s: pid %d ended: %s\n", stamp(), p.pid, status))
	close(p.done)
}

// signal sends sig to the leader (group=false) or the whole process group
// (group=true), unless the leader has already exited.
func (p *proc) signal(sig syscall.Signal, group bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	pid := p.pid
	if group {
		pid = -pid
	}
	_ = unix.Kill(pid, sig)
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.exited
}

func (p *proc) reaped(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

func stamp() string { return time.Now().Format("15:04:05.000000") }

func appendLog(path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(s)
}

// daemonArgs is the daemon command line (without the binary).
func (h *Host) daemonArgs(extra []string) []string {
	args := []string{
		"daemon",
		"--data-dir", h.DataDir,
		"--host", "unix://" + h.Socket,
		"--node-name", h.Name,
		"--advertise-addr", h.IP,
		"--listen-addr", h.IP + ":2377",
		"--log-level", "debug",
		// Overlay networking stays in the test range and in the lab: the
		// egress bridge takes the last /24 of 198.19.0.0/16 (tests carve
		// overlay subnets from its start), and tasks' resolvers forward
		// other names to the host namespace's loopback, where nothing
		// listens.
		"--egress-subnet", EgressSubnet,
		"--resolv-conf", filepath.Join(h.lab.Dir, resolvConfName),
	}
	return append(args, extra...)
}

// EgressSubnet is the egress bridge subnet of every test daemon.
const EgressSubnet = "198.19.255.0/24"

// resolvConfName is the lab's resolv.conf for the daemons (see daemonArgs).
const resolvConfName = "resolv.conf"

// Start starts the daemon (see StartErr) and fails the test if it does not
// come up.
func (h *Host) Start(t testing.TB, extra ...string) {
	t.Helper()
	if err := h.StartErr(extra...); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// StartErr runs
//
//	shoal daemon --data-dir D --host unix://S --node-name NAME \
//	    --advertise-addr IP --listen-addr IP:2377 --log-level debug EXTRA...
//
// in the host's namespace (via nsenter), in DataDir, with the environment
// CLI uses (SHOAL_HOST removed, LabOptions.Env added) and stdout and stderr
// appended to h.Log, and returns once the socket accepts a connection (the
// pid is then the daemon's own: nsenter execs it in place). The extra
// arguments are remembered for Restart. If the process exits first, the
// error carries its exit status and the tail of its log; if the socket is
// not up within 20 s the process is killed and an error returned. A stale
// socket file left by a killed daemon is not removed: the daemon has to
// cope with it, as it would after a real crash.
func (h *Host) StartErr(extra ...string) error {
	h.mu.Lock()
	if h.proc != nil && h.proc.running() {
		h.mu.Unlock()
		return fmt.Errorf("%s: daemon already running (pid %d)", h.Name, h.proc.pid)
	}
	h.extra = append([]string(nil), extra...)
	p, err := h.spawn(extra)
	if err != nil {
		h.mu.Unlock()
		return fmt.Errorf("%s: starting daemon: %w", h.Name, err)
	}
	h.proc = p
	h.mu.Unlock()
	return h.awaitSocket(p)
}

// spawn starts the daemon process. Called with h.mu held.
func (h *Host) spawn(extra []string) (*proc, error) {
	l := h.lab
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errors.New("lab is closed")
	}
	if l.opts.Binary == "" {
		return nil, errors.New("LabOptions.Binary is empty")
	}
	if err := resolveTools(); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(h.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor

	args := nsenterArgs(h.NetNS, l.opts.Binary, h.daemonArgs(extra)...)
	cmd := exec.Command(tools.nsenter, args...)
	cmd.Dir = h.DataDir
	cmd.Env = l.processEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	fmt.Fprintf(logf, "=== harness %s: starting %s: %s %s\n", stamp(), h.Name, l.opts.Binary,
		strings.Join(h.daemonArgs(extra), " "))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// nsenter execs the daemon in place (no fork when only entering a
	// network namespace), so this pid is the daemon's.
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	fmt.Fprintf(logf, "=== harness %s: pid %d\n", stamp(), p.pid)
	go p.wait(h.Log)
	return p, nil
}

// awaitSocket waits until the daemon's socket accepts a connection.
func (h *Host) awaitSocket(p *proc) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("unix", h.Socket, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			p.mu.Lock()
			werr := p.waitErr
			p.mu.Unlock()
			if werr == nil {
				werr = errors.New("exit status 0")
			}
			return fmt.Errorf("%s: daemon (pid %d) exited before its socket %s was ready: %w\n---- last %d lines of %s ----\n%s",
				h.Name, p.pid, h.Socket, werr, logTailLines, h.Log, tailFile(h.Log, logTailLines))
		case <-deadline.C:
			p.signal(unix.SIGKILL, true)
			p.reaped(reapTimeout)
			return fmt.Errorf("%s: daemon (pid %d) socket %s not ready within %v; killed\n---- last %d lines of %s ----\n%s",
				h.Name, p.pid, h.Socket, startTimeout, logTailLines, h.Log, tailFile(h.Log, logTailLines))
		case <-tick.C:
		}
	}
}

func (h *Host) current() *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc
}

// Kill SIGKILLs the daemon's process group and waits until it is reaped.
// It only logs if the daemon is not running.
func (h *Host) Kill(t testing.TB) {
	t.Helper()
	p := h.current()
	if p == nil || !p.running() {
		t.Logf("harness: Kill %s: daemon not running", h.Name)
		return
	}
	p.signal(unix.SIGKILL, true)
	if !p.reaped(reapTimeout) {
		t.Fatalf("harness: %s: daemon pid %d not reaped %v after SIGKILL", h.Name, p.pid, reapTimeout)
	}
}

// Stop sends SIGTERM to the daemon, waits up to 10 s for it to exit, then
// SIGKILLs its process group. It does nothing if the daemon is not
// running. Whether the exit was clean is reported by ExitErr.
func (h *Host) Stop(t testing.TB) {
	t.Helper()
	p := h.current()
	if p == nil || !p.running() {
		return
	}
	p.signal(unix.SIGTERM, false)
	if p.reaped(stopGrace) {
		return
	}
	t.Logf("harness: %s: daemon pid %d still running %v after SIGTERM; killing", h.Name, p.pid, stopGrace)
	p.signal(unix.SIGKILL, true)
	if !p.reaped(reapTimeout) {
		t.Fatalf("harness: %s: daemon pid %d not reaped %v after SIGKILL", h.Name, p.pid, reapTimeout)
	}
}

// Restart stops the daemon if it is running, then starts it again with the
// extra arguments of the last Start.
func (h *Host) Restart(t testing.TB) {
	t.Helper()
	h.Stop(t)
	h.mu.Lock()
	extra := append([]string(nil), h.extra...)
	h.mu.Unlock()
	h.Start(t, extra...)
}

// Running reports whether the daemon process is alive.
func (h *Host) Running() bool {
	p := h.current()
	return p != nil && p.running()
}

// PID is the pid of the current (or last) daemon process, 0 if none was
// started.
func (h *Host) PID() int {
	p := h.current()
	if p == nil {
		return 0
	}
	return p.pid
}

// ExitErr is the wait status of the last daemon process once it has been
// reaped: nil for exit status 0 (and while it runs or if none was
// started), otherwise typically an *exec.ExitError.
func (h *Host) ExitErr() error {
	p := h.current()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

func (h *Host) killForClose() {
	if p := h.current(); p != nil {
		p.signal(unix.SIGKILL, true)
	}
}

func (h *Host) waitForClose(timeout time.Duration) error {
	p := h.current()
	if p == nil || p.reaped(timeout) {
		return nil
	}
	return fmt.Errorf("%s: daemon pid %d not reaped %v after SIGKILL", h.Name, p.pid, timeout)
}

// Partition cuts the host off the LAN by setting its bridge-side veth down
// in the LAN namespace. Its own eth0 stays configured.
func (h *Host) Partition(t testing.TB) {
	t.Helper()
	if err := ipCmd("-n", h.lab.LANNetNS, "link", "set", "dev", h.bridgePort, "down"); err != nil {
		t.Fatalf("harness: partition %s: %v", h.Name, err)
	}
}

// Heal reconnects a partitioned host.
func (h *Host) Heal(t testing.TB) {
	t.Helper()
	if err := ipCmd("-n", h.lab.LANNetNS, "link", "set", "dev", h.bridgePort, "up"); err != nil {
		t.Fatalf("harness: heal %s: %v", h.Name, err)
	}
}

// Block drops all IPv4 traffic between this host and the given peers (in
// both directions), with an nftables table "shoal_harness" in this host's
// namespace. Blocks accumulate across calls; established connections are
// affected too.
func (h *Host) Block(t testing.TB, peers ...*Host) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocked == nil {
		h.blocked = make(map[string]bool)
	}
	for _, p := range peers {
		if p != h {
			h.blocked[p.IP] = true
		}
	}
	if err := h.applyBlocksLocked(); err != nil {
		t.Fatalf("harness: block on %s: %v", h.Name, err)
	}
}

// Unblock lifts the blocks on the given peers.
func (h *Host) Unblock(t testing.TB, peers ...*Host) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range peers {
		delete(h.blocked, p.IP)
	}
	if err := h.applyBlocksLocked(); err != nil {
		t.Fatalf("harness: unblock on %s: %v", h.Name, err)
	}
}

// UnblockAll removes the host's nftables table and so every block.
func (h *Host) UnblockAll(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.blocked = nil
	if err := h.applyBlocksLocked(); err != nil {
		t.Fatalf("harness: unblock all on %s: %v", h.Name, err)
	}
}

// applyBlocksLocked replaces the host's nftables table in one transaction
// ("add table; delete table" makes the delete succeed even when the table
// does not exist yet).
func (h *Host) applyBlocksLocked() error {
	if err := resolveTools(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", nftTable, nftTable)
	if len(h.blocked) > 0 {
		ips := make([]string, 0, len(h.blocked))
		for ip := range h.blocked {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		set := strings.Join(ips, ", ")
		fmt.Fprintf(&b, "table inet %s {\n", nftTable)
		fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr { %s } drop\n\t}\n", set)
		fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr { %s } drop\n\t}\n", set)
		b.WriteString("}\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	_, err := runCmd(ctx, strings.NewReader(b.String()), nil, tools.nsenter,
		nsenterArgs(h.NetNS, tools.nft, "-f", "-")...)
	return err
}

// CLI runs `shoal -H unix://<Socket> args...` in the root namespace (the
// socket is a file) and returns its stdout, stderr and error (an
// *exec.ExitError for a non-zero exit). The environment is the test's,
// without SHOAL_HOST, plus LabOptions.Env.
func (h *Host) CLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	bin := h.lab.opts.Binary
	if bin == "" {
		return "", "", errors.New("LabOptions.Binary is empty")
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", "unix://" + h.Socket}, args...)...)
	cmd.Env = h.lab.processEnv()
	cmd.Dir = h.lab.Dir
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return out.String(), errb.String(), err
}

// MustCLI is CLI with a 60 s deadline that fails the test, showing stderr,
// unless the command exits 0. It returns stdout.
func (h *Host) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	stdout, stderr, err := h.CLI(ctx, args...)
	if err != nil {
		t.Fatalf("harness: %s: shoal %s: %v\nstderr:\n%s\nstdout:\n%s",
			h.Name, strings.Join(args, " "), err, stderr, stdout)
	}
	return stdout
}

// processEnv is the environment of daemon and CLI processes: the test's,
// without SHOAL_HOST, plus LabOptions.Env.
func (l *Lab) processEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_HOST=") {
			env = append(env, kv)
		}
	}
	return append(env, l.opts.Env...)
}

// Exec runs a command inside the host's network namespace (via nsenter)
// and returns its stdout; on failure the error includes the exit status
// and stderr.
func (h *Host) Exec(ctx context.Context, name string, args ...string) (string, error) {
	if err := resolveTools(); err != nil {
		return "", err
	}
	return runCmd(ctx, nil, nil, tools.nsenter, nsenterArgs(h.NetNS, name, args...)...)
}
