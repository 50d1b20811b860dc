package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// commandTimeout bounds every ip/nft/nsenter invocation made by the harness
// itself.
const commandTimeout = 30 * time.Second

var tools struct {
	once    sync.Once
	ip      string
	nsenter string
	nft     string
	err     error
}

// lookTool finds a system tool in PATH or, failing that, in the usual system
// directories (PATH of a non-login root shell may lack /usr/sbin).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or system directories", name)
}

func resolveTools() error {
	tools.once.Do(func() {
		var errs []error
		var err error
		if tools.ip, err = lookTool("ip"); err != nil {
			errs = append(errs, err)
		}
		if tools.nsenter, err = lookTool("nsenter"); err != nil {
			errs = append(errs, err)
		}
		if tools.nft, err = lookTool("nft"); err != nil {
			errs = append(errs, err)
		}
		tools.err = errors.Join(errs...)
	})
	return tools.err
}

// RequireRoot skips the test unless it runs as root and the ip, nsenter and
// nft tools are installed.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("harness: test needs root (network namespaces, veth pairs, nftables); skipping")
	}
	if err := resolveTools(); err != nil {
		t.Skipf("harness: required tools missing (%v); skipping", err)
	}
}

// childAttr makes a child its own process group leader (so the harness can
// signal everything it spawned by group) and has the kernel SIGKILL it if
// the test binary dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// runCmd runs a short-lived command and returns its stdout. On failure the
// error carries the command line, exit status and stderr.
func runCmd(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// ipCmd runs the ip tool with a bounded deadline.
func ipCmd(args ...string) error {
	if err := resolveTools(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	_, err := runCmd(ctx, nil, nil, tools.ip, args...)
	return err
}

// nsPath is where iproute2 pins a named network namespace.
func nsPath(name string) string { return "/run/netns/" + name }

// nsenterArgs prefixes a command with nsenter into a named network namespace.
func nsenterArgs(netns, name string, args ...string) []string {
	return append([]string{"--net=" + nsPath(netns), "--", name}, args...)
}
