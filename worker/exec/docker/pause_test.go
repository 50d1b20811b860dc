package docker

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPauseProgramIsAValidExecutable(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		b, err := pauseProgram(arch)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not an ELF file: %v", arch, err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
		if f.Machine != want || f.Type != elf.ET_EXEC || len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD {
			t.Fatalf("%s: machine %v type %v, %d program headers", arch, f.Machine, f.Type, len(f.Progs))
		}
		if p := f.Progs[0]; f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Filesz || p.Filesz != uint64(len(b)) {
			t.Fatalf("%s: entry %#x outside the loaded segment %#x+%d", arch, f.Entry, p.Vaddr, p.Filesz)
		}
	}
	if _, err := pauseProgram("mips"); err == nil {
		t.Fatal("an executable for mips was made")
	}
}

// TestPauseProgramWaitsForSignals runs the program for this machine: it
// must stay up, idle, until it is signalled.
func TestPauseProgramWaitsForSignals(t *testing.T) {
	b, err := pauseProgram(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	path := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the program exited by itself: %v", err)
	case <-time.After(300 * time.Millisecond): // long enough to crash or spin out if it were broken
	}
	// Idle, not spinning: it used (almost) no CPU while it waited.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name: state is the first, utime and stime
	// the 12th and 13th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	if ticks := utime + stime; ticks > 10 {
		t.Errorf("the program used %d clock ticks of CPU in 300ms of waiting", ticks)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("after SIGTERM: %v (status %v)", err, ws)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the program did not end on SIGTERM")
	}
}
