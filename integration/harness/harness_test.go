package harness_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// helperEnv switches the test binary into a helper role instead of running
// tests:
//
//	fake-shoal   stands in for the shoal binary: "daemon ..." serves a TCP
//	             echo on <advertise-addr>:7000 and a unix socket at --host;
//	             "-H unix://S args..." is a CLI that queries that socket.
//	echo-client  connects to the address in its argument, checks the echo.
const helperEnv = "SHOAL_HARNESS_HELPER"

// bogusShoalHost must never reach CLI processes.
const bogusShoalHost = "unix:///nonexistent/harness-selftest.sock"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "fake-shoal":
		os.Exit(fakeShoal(os.Args[1:]))
	case "echo-client":
		os.Exit(echoClient(os.Args[1:]))
	}
	os.Setenv("SHOAL_HOST", bogusShoalHost)
	harness.Main(m)
}

// flagValues picks --name value / --name=value pairs out of args, ignoring
// everything it does not know; a known flag without a value maps to "true".
func flagValues(args []string, known ...string) map[string]string {
	want := map[string]bool{}
	for _, k := range known {
		want[k] = true
	}
	vals := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !want[name] {
			continue
		}
		if !hasVal {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				val = args[i]
			} else {
				val = "true"
			}
		}
		vals[name] = val
	}
	return vals
}

func fakeShoal(args []string) int {
	if len(args) >= 2 && args[0] == "-H" {
		return fakeCLI(strings.TrimPrefix(args[1], "unix://"), args[2:])
	}
	if len(args) == 0 || args[0] != "daemon" {
		fmt.Fprintf(os.Stderr, "fake-shoal: unexpected arguments %q\n", args)
		return 2
	}
	f := flagValues(args[1:], "host", "node-name", "advertise-addr", "harness-fail")
	fmt.Printf("fake-shoal daemon %s starting, pid %d\n", f["node-name"], os.Getpid())
	if f["harness-fail"] == "true" {
		fmt.Fprintln(os.Stderr, "refusing to start: --harness-fail given")
		return 3
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	// Binding the host IP only works inside the host's namespace.
	tl, err := net.Listen("tcp", net.JoinHostPort(f["advertise-addr"], "7000"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-shoal:", err)
		return 1
	}
	go serve(tl, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})

	sock := strings.TrimPrefix(f["host"], "unix://")
	os.Remove(sock) // a previous incarnation may have been killed
	ul, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-shoal:", err)
		return 1
	}
	go serve(ul, func(c net.Conn) {
		req, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "node=%s pid=%d req=%s\n", f["node-name"], os.Getpid(), strings.TrimSpace(req))
	})

	s := <-sigs
	fmt.Printf("fake-shoal daemon %s: %v, shutting down\n", f["node-name"], s)
	ul.Close()
	tl.Close()
	return 0
}

func serve(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func fakeCLI(sock string, args []string) int {
	if len(args) > 0 && args[0] == "fail" {
		fmt.Fprintln(os.Stderr, "error: failing as asked")
		return 2
	}
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, strings.Join(args, " "))
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	fmt.Print(reply)
	fmt.Printf("shoal_host=%q\n", os.Getenv("SHOAL_HOST"))
	return 0
}

func echoClient(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: echo-client ADDR")
		return 2
	}
	c, err := net.DialTimeout("tcp", args[0], time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-client:", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := fmt.Sprintf("ping %d\n", os.Getpid())
	if _, err := c.Write([]byte(msg)); err != nil {
		fmt.Fprintln(os.Stderr, "echo-client:", err)
		return 1
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != msg {
		fmt.Fprintf(os.Stderr, "echo-client: got %q, %v\n", got, err)
		return 1
	}
	fmt.Println("ok")
	return 0
}

// fakeOptions makes the test binary itself the lab's "shoal" binary.
func fakeOptions(t *testing.T) harness.LabOptions {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return harness.LabOptions{Binary: exe, Env: []string{helperEnv + "=fake-shoal"}}
}

// reach checks with real packets that from can reach to's echo server.
func reach(from, to *harness.Host) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := from.Exec(ctx, "env", helperEnv+"=echo-client", exe, to.IP+":7000")
	if err != nil {
		return fmt.Errorf("%s -> %s: %w", from.Name, to.Name, err)
	}
	if strings.TrimSpace(out) != "ok" {
		return fmt.Errorf("%s -> %s: unexpected output %q", from.Name, to.Name, out)
	}
	return nil
}

func mustReach(t *testing.T, from, to *harness.Host) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, from.Name+" reaches "+to.Name, func() error {
		return reach(from, to)
	})
}

func mustNotReach(t *testing.T, from, to *harness.Host) {
	t.Helper()
	if err := reach(from, to); err == nil {
		t.Fatalf("%s unexpectedly reaches %s", from.Name, to.Name)
	}
}

func procExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func TestLab(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	lab := harness.NewLab(t, fakeOptions(t))
	h1, h2, h3 := lab.AddHost(t), lab.AddHost(t), lab.AddHost(t)
	for i, h := range lab.Hosts() {
		if want := fmt.Sprintf("198.18.0.%d", i+1); h.IP != want {
			t.Fatalf("host %d IP = %s, want %s", i+1, h.IP, want)
		}
		if want := fmt.Sprintf("h%d", i+1); h.Name != want {
			t.Fatalf("host %d name = %s, want %s", i+1, h.Name, want)
		}
		if !strings.HasPrefix(h.NetNS, lab.Prefix+"-") {
			t.Fatalf("host netns %s lacks lab prefix %s", h.NetNS, lab.Prefix)
		}
	}

	h1.Start(t)
	if !h1.Running() || h1.PID() == 0 {
		t.Fatal("h1 not running after Start")
	}
	// The pid is the daemon itself (nsenter execs it).
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", h1.PID())); strings.Contains(exe, "nsenter") {
		t.Fatalf("pid %d is nsenter, not the daemon", h1.PID())
	}

	t.Run("cli", func(t *testing.T) {
		out := h1.MustCLI(t, "node", "ls")
		if !strings.Contains(out, "node=h1") || !strings.Contains(out, "req=node ls") {
			t.Fatalf("unexpected CLI output %q", out)
		}
		if !strings.Contains(out, `shoal_host=""`) {
			t.Fatalf("SHOAL_HOST leaked into the CLI: %q", out)
		}
		_, stderr, err := h1.CLI(context.Background(), "fail")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr, "failing as asked") {
			t.Fatalf("CLI fail: err=%v stderr=%q", err, stderr)
		}
	})

	t.Run("partition", func(t *testing.T) {
		mustReach(t, h2, h1)
		mustReach(t, h3, h1)
		h1.Partition(t)
		mustNotReach(t, h2, h1)
		h1.Heal(t)
		mustReach(t, h2, h1)
	})

	t.Run("block", func(t *testing.T) {
		h1.Block(t, h2)
		mustNotReach(t, h2, h1)
		if err := reach(h3, h1); err != nil {
			t.Fatalf("h3 should still reach h1: %v", err)
		}
		h1.Block(t, h3)
		mustNotReach(t, h3, h1)
		h1.Unblock(t, h3)
		mustReach(t, h3, h1)
		mustNotReach(t, h2, h1)
		h1.UnblockAll(t)
		mustReach(t, h2, h1)
		h1.UnblockAll(t) // idempotent
	})

	t.Run("kill-restart", func(t *testing.T) {
		old := h1.PID()
		h1.Kill(t)
		if h1.Running() {
			t.Fatal("h1 running after Kill")
		}
		if procExists(old) {
			t.Fatalf("pid %d still exists after Kill", old)
		}
		var ee *exec.ExitError
		if err := h1.ExitErr(); !errors.As(err, &ee) {
			t.Fatalf("ExitErr after Kill = %v, want a signal exit", err)
		}
		mustNotReach(t, h2, h1)
		h1.Restart(t)
		if !h1.Running() || h1.PID() == old {
			t.Fatalf("h1 not restarted (running=%v pid=%d old=%d)", h1.Running(), h1.PID(), old)
		}
		mustReach(t, h2, h1)

		h1.Stop(t)
		if h1.Running() {
			t.Fatal("h1 running after Stop")
		}
		if err := h1.ExitErr(); err != nil {
			t.Fatalf("graceful stop: ExitErr = %v", err)
		}
		h1.Restart(t) // from stopped
		mustReach(t, h3, h1)

		log, err := os.ReadFile(h1.Log)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "fake-shoal daemon h1 starting"); n != 3 {
			t.Fatalf("log has %d daemon starts, want 3 (kept across restarts)", n)
		}
	})
}

func TestStartErr(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	lab := harness.NewLab(t, fakeOptions(t))
	h := lab.AddHost(t)
	err := h.StartErr("--harness-fail")
	if err == nil {
		t.Fatal("StartErr succeeded for a daemon that refuses to start")
	}
	for _, want := range []string{"exit status 3", "refusing to start"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("StartErr error lacks %q:\n%v", want, err)
		}
	}
	if h.Running() {
		t.Fatal("Running after failed start")
	}
	h.Start(t) // new extra args replace the failing ones
	h.Restart(t)
	if !h.Running() {
		t.Fatal("not running after Restart")
	}
	if err := h.StartErr(); err == nil {
		t.Fatal("second StartErr on a running host succeeded")
	}
}

func listNetNS(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func TestLabClose(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	lab := harness.NewLab(t, fakeOptions(t))
	a, b := lab.AddHost(t), lab.AddHost(t)
	a.Start(t)
	b.Start(t)
	mustReach(t, a, b)
	pids := []int{a.PID(), b.PID()}

	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, line := range strings.Split(listNetNS(t), "\n") {
		if strings.HasPrefix(line, lab.Prefix+"-") {
			t.Errorf("namespace %q survived Close", line)
		}
	}
	for _, pid := range pids {
		if procExists(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if os.Getenv("SHOAL_KEEP_LAB") != "1" {
		if _, err := os.Stat(lab.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lab dir %s survived Close: %v", lab.Dir, err)
		}
	}
	if a.Running() || b.Running() {
		t.Error("hosts report running after Close")
	}
	if err := a.StartErr(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestSweepStale(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	// A pid residue no running process has: a dead test process's labs.
	live := map[int]bool{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			live[pid%100000] = true
		}
	}
	dead := 99999
	for live[dead] {
		dead--
	}
	// The lab number is our pid so that concurrent runs of this test do
	// not collide.
	seq := os.Getpid()
	stale := []string{fmt.Sprintf("sh%dx%d-h1", dead, seq), fmt.Sprintf("sh%dx%d-lan", dead, seq)}
	// A live one of ours that must survive: this process's pid.
	mine := fmt.Sprintf("sh%dx999999-lan", os.Getpid()%100000)
	for _, ns := range append(stale, mine) {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				exec.Command("ip", "netns", "delete", ns).Run()
			}
		})
	}
	harness.NewLab(t, fakeOptions(t))
	list := listNetNS(t)
	for _, ns := range stale {
		if strings.Contains(list, ns) {
			t.Errorf("stale namespace %s not swept", ns)
		}
	}
	if !strings.Contains(list, mine) {
		t.Errorf("live namespace %s was swept", mine)
	}
}
