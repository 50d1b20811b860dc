//go:build bench

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestBenchControlPlaneScale measures the control plane alone: a 3-manager
// cluster of real daemons, plus SHOAL_BENCH_NODES (default 1000) simulated
// worker nodes hosted by one scripts/bench/simnodes process in a lab host
// of its own — each with its own certificate, heartbeats, assignment stream
// and status reporter, running tasks on the simulated executor. It creates
// a service of SHOAL_BENCH_TASKS (default 20000) replicas on the workers
// and measures from the create call until every task runs.
func TestBenchControlPlaneScale(t *testing.T) {
	nodes := envInt("SHOAL_BENCH_NODES", 1000)
	tasks := envInt("SHOAL_BENCH_TASKS", 20000)
	simBin := buildSimNodes(t)

	c := newClusterArgs(t, 3, 0)
	first := c.managers[0]
	token := strings.TrimSpace(first.MustCLI(t, "swarm", "join-token", "-q", "worker"))
	var addrs []string
	for _, m := range c.managers {
		addrs = append(addrs, m.IP+":2377")
	}

	simHost := c.lab.AddHost(t)
	ready := filepath.Join(simHost.DataDir, "ready")
	sim := startSimNodes(t, simHost, simBin,
		"--join-token", token,
		"--manager", strings.Join(addrs, ","),
		"--count", strconv.Itoa(nodes),
		"--prefix", "sim",
		"--data-dir", simDataDir(t),
		"--ready-file", ready)

	joinStart := time.Now()
	harness.Eventually(t, 10*time.Minute, "simulated nodes ready", func() error {
		if sim.exited() {
			t.Fatalf("simnodes exited: %v\n%s", sim.cmd.ProcessState, sim.tail())
		}
		if _, err := os.Stat(ready); err != nil {
			return err
		}
		return nil
	})
	t.Logf("simnodes ready: %d nodes joined and beating after %.1fs", nodes, time.Since(joinStart).Seconds())

	client := control(t, first)
	want := nodes + len(c.managers)
	harness.Eventually(t, 5*time.Minute, "all nodes Ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.ListNodes(ctx, &shoalpb.ListNodesRequest{})
		if err != nil {
			return err
		}
		nready := 0
		for _, n := range resp.Nodes {
			if n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_READY {
				nready++
			}
		}
		if nready != want {
			return fmt.Errorf("%d of %d nodes Ready (%d listed)", nready, want, len(resp.Nodes))
		}
		return nil
	})
	t.Logf("all %d nodes Ready after %.1fs", want, time.Since(joinStart).Seconds())
	leader := c.leader(t, first)

	// CPU time each process spends on the measured interval: with all of
	// them on the same few cores, this says more than the rate alone about
	// what a change saved.
	pids := []int{leader.PID()}
	for _, m := range c.managers {
		if m != leader {
			pids = append(pids, m.PID())
		}
	}
	pids = append(pids, sim.cmd.Process.Pid)
	cpuBefore := make([]time.Duration, len(pids))
	for i, pid := range pids {
		cpuBefore[i] = cpuTime(pid)
	}

	const service = "scale"
	start := time.Now()
	first.MustCLI(t, "service", "create", "-d", "--name", service, "--replicas", strconv.Itoa(tasks),
		"--stop-grace-period", "0s", "--constraint", "node.role==worker", "sim/sleep:24h")
	created := time.Since(start)
	var firstRunning time.Duration
	last, lastLog := uint64(0), time.Now()
	for {
		running, err := serviceRunning(client, service)
		if err != nil {
			t.Logf("list services: %v", err)
		}
		if running > 0 && firstRunning == 0 {
			firstRunning = time.Since(start)
		}
		if running >= uint64(tasks) {
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			t.Logf("%.1fs: %d of %d tasks running (+%.0f/s)", time.Since(start).Seconds(), running, tasks, float64(running-last)/time.Since(lastLog).Seconds())
			last, lastLog = running, time.Now()
		}
		if time.Since(start) > 20*time.Minute {
			t.Fatalf("only %d of %d tasks running %s after the create call", running, tasks, time.Since(start))
		}
		if sim.exited() {
			t.Fatalf("simnodes exited: %v\n%s", sim.cmd.ProcessState, sim.tail())
		}
		time.Sleep(500 * time.Millisecond) // polling interval of the measurement
	}
	total := time.Since(start)
	cpu := make([]string, len(pids))
	for i, pid := range pids {
		cpu[i] = fmt.Sprintf("%.1f", (cpuTime(pid) - cpuBefore[i]).Seconds())
	}
	fmt.Printf("RESULT scale cpu-seconds leader=%s followers=%s,%s simnodes=%s (wall %.1fs)\n", cpu[0], cpu[1], cpu[2], cpu[3], total.Seconds())
	fmt.Printf("RESULT scale nodes=%d tasks=%d placement-to-running=%.1fs rate=%.0f tasks/s first-running=%.2fs create-call=%.2fs simnodes-maxrss=%dMiB leader-maxrss=%dMiB\n",
		nodes, tasks, total.Seconds(), float64(tasks)/total.Seconds(), firstRunning.Seconds(), created.Seconds(),
		vmHWM(sim.cmd.Process.Pid)>>10, vmHWM(leader.PID())>>10)

	if os.Getenv("SHOAL_CPU_PROFILE_DIR") != "" {
		// Stop everything now, so the profiles cover the measured run
		// and are written (on SIGTERM) before the cleanup kills.
		for _, m := range c.managers {
			m.Stop(t)
		}
		sim.cmd.Process.Signal(syscall.SIGTERM)
		<-sim.done
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, stderr, err := first.CLI(ctx, "service", "rm", service); err != nil {
		t.Logf("service rm: %v: %s%s", err, out, stderr)
	}
}

// buildSimNodes builds scripts/bench/simnodes into a temporary directory.
func buildSimNodes(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "simnodes")
	cmd := exec.Command("go", "build", "-o", bin, "../scripts/bench/simnodes")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build simnodes: %v\n%s", err, out)
	}
	return bin
}

// simDataDir is where the simulated nodes keep their task databases: on
// tmpfs when there is one, so that the benchmark measures the control
// plane rather than the simulating host's fsyncs.
func simDataDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "shoal-simnodes-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// simProc is the running simnodes tool.
type simProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process is reaped
}

func (p *simProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail is the end of the tool's log.
func (p *simProc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// startSimNodes runs the simnodes tool in h's network namespace (nsenter
// execs it in place, so the pid is the tool's), its output in a log file
// next to the host's, and stops it at cleanup (SIGTERM, then SIGKILL of
// its process group). It dies with the test process.
func startSimNodes(t *testing.T, h *harness.Host, bin string, args ...string) *simProc {
	t.Helper()
	p := &simProc{log: filepath.Join(filepath.Dir(h.Log), h.Name+"-simnodes.log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.NetNS, "--", bin}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start simnodes: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
		t.Logf("simnodes ended (%v); its log: %s", p.cmd.ProcessState, p.log)
	})
	return p
}

// serviceRunning is the service's running task count from ListServices
// (ListTasks of tens of thousands of tasks exceeds gRPC's default 4 MiB
// receive limit).
func serviceRunning(c shoalpb.ControlClient, name string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.ListServices(ctx, &shoalpb.ListServicesRequest{Filters: map[string]*shoalpb.FilterValues{"name": {Values: []string{name}}}})
	if err != nil {
		return 0, err
	}
	for _, s := range resp.Services {
		if s.GetSpec().GetName() == name {
			return resp.Statuses[s.Id].GetRunningTasks(), nil
		}
	}
	return 0, fmt.Errorf("service %s not listed", name)
}

// cpuTime is the user and system CPU time a process has used, 0 if
// unknown.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after it count
	// from its closing parenthesis: utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// vmHWM is a process's peak resident set size in KiB, 0 if unknown.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
