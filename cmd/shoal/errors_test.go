package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestUsageErrors checks that mistakes on the command line are reported
// with a pointer to the help and that the daemon is never contacted.
func TestUsageErrors(t *testing.T) {
	f := startFake(t)
	cases := []struct {
		args []string
		want string // first line of stderr
		help string // command named in the "See ..." line
	}{
		{[]string{"node", "update", "--availability", "xyz", "n1"},
			`invalid argument "xyz" for "--availability" flag: invalid availability "xyz": must be active, pause or drain`, "shoal node update"},
		{[]string{"node", "update", "--role", "boss", "n1"},
			`invalid argument "boss" for "--role" flag: invalid role "boss": must be worker or manager`, "shoal node update"},
		{[]string{"node", "update", "--label-add", "=v", "n1"},
			`invalid argument "=v" for "--label-add" flag: invalid label "=v": the key is empty`, "shoal node update"},
		{[]string{"node", "update", "n1"}, "at least one flag must be set", "shoal node update"},
		{[]string{"node", "update"}, `"shoal node update" requires exactly 1 argument.`, "shoal node update"},
		{[]string{"swarm", "update", "--dispatcher-heartbeat", "xyz"},
			`invalid argument "xyz" for "--dispatcher-heartbeat" flag: time: invalid duration "xyz"`, "shoal swarm update"},
		{[]string{"swarm", "init", "--cert-expiry", "3 days"},
			`invalid argument "3 days" for "--cert-expiry" flag: time: unknown unit " days" in duration "3 days"`, "shoal swarm init"},
		{[]string{"swarm", "update"}, "at least one flag must be set", "shoal swarm update"},
		{[]string{"swarm", "join-token", "admin"}, `invalid role "admin": must be worker or manager`, "shoal swarm join-token"},
		{[]string{"swarm", "join-token"}, `"shoal swarm join-token" requires exactly 1 argument.`, "shoal swarm join-token"},
		{[]string{"swarm", "join", "10.0.0.1:2377"}, `required flag "--token" not set`, "shoal swarm join"},
		{[]string{"node", "ls", "-f", "role"}, `invalid argument "role" for "-f, --filter" flag: bad format of filter "role" (expected name=value)`, "shoal node ls"},
		{[]string{"node", "ls", "--bogus"}, "unknown flag: --bogus", "shoal node ls"},
		{[]string{"node", "ls", "extra"}, `"shoal node ls" accepts no arguments.`, "shoal node ls"},
		{[]string{"node", "inspect"}, `"shoal node inspect" requires at least 1 argument.`, "shoal node inspect"},
		{[]string{"node", "inspect", "--pretty", "--format", "{{.ID}}", "self"}, "--format is incompatible with human friendly format", "shoal node inspect"},
		{[]string{"node", "rm"}, `"shoal node rm" requires at least 1 argument.`, "shoal node rm"},
		{[]string{"node", "promote"}, `"shoal node promote" requires at least 1 argument.`, "shoal node promote"},
		{[]string{"nodes"}, "shoal: 'nodes' is not a shoal command.", "shoal"},
		{[]string{"daemon", "--log-level", "loud"}, `invalid argument "loud" for "--log-level" flag: invalid log level "loud": must be debug, info, warn or error`, "shoal daemon"},
	}
	for _, c := range cases {
		stdout, stderr, code := f.cli(t, c.args...)
		if code != 1 {
			t.Errorf("%q: exit %d, want 1", c.args, code)
		}
		if stdout != "" {
			t.Errorf("%q: unexpected stdout %q", c.args, stdout)
		}
		first, _, _ := strings.Cut(stderr, "\n")
		if first != c.want {
			t.Errorf("%q: stderr first line\n got %q\nwant %q", c.args, first, c.want)
		}
		if see := "See '" + c.help + " --help'.\n"; !strings.HasSuffix(stderr, see) {
			t.Errorf("%q: stderr %q does not end with %q", c.args, stderr, see)
		}
	}
	if m := f.methods(); len(m) != 0 {
		t.Errorf("usage errors reached the daemon: %v", m)
	}
}

// TestBadTemplateNotSent checks that a bad --format fails before any call.
func TestBadTemplateNotSent(t *testing.T) {
	f := startFake(t)
	for _, args := range [][]string{
		{"node", "ls", "--format", "{{.ID"},
		{"node", "inspect", "--format", "{{end}}", "self"},
		{"info", "--format", "{{"},
	} {
		_, stderr, code := f.cli(t, args...)
		if code != 1 || !strings.HasPrefix(stderr, "template parsing error:") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	if m := f.methods(); len(m) != 0 {
		t.Errorf("calls were made: %v", m)
	}
}

func TestBadHost(t *testing.T) {
	for _, host := range []string{"tcp://127.0.0.1:2375", "unix://", "/run/shoal/shoal.sock"} {
		_, stderr, code := cli(t, "-H", host, "info")
		want := `invalid host "` + host + `": only unix:///path sockets are supported` + "\n"
		if code != 1 || stderr != want {
			t.Errorf("-H %s: exit %d, stderr %q, want %q", host, code, stderr, want)
		}
	}
}

func TestDaemonErrorPrinting(t *testing.T) {
	f := startFake(t)
	msg := `This node is not a swarm manager. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm and try again.`
	f.on("ListNodes", func(proto.Message) (proto.Message, error) {
		return nil, status.Error(codes.FailedPrecondition, msg)
	})
	stdout, stderr, code := f.cli(t, "node", "ls")
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if want := "Error response from daemon: " + msg + "\n"; stderr != want {
		t.Errorf("stderr\n got %q\nwant %q", stderr, want)
	}
	// Methods the fake does not implement come back as the daemon's error
	// too, without gRPC's "rpc error: code = ..." decoration.
	_, stderr, code = f.cli(t, "swarm", "leave")
	if code != 1 || stderr != "Error response from daemon: method Leave not implemented\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestCannotConnect(t *testing.T) {
	dir, err := os.MkdirTemp("", "shoal-cli-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	missing := filepath.Join(dir, "missing.sock")
	// A socket file nobody listens on any more, as a killed daemon leaves.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	for _, sock := range []string{missing, stale} {
		for _, args := range [][]string{{"info"}, {"node", "ls"}, {"swarm", "join", "--token", "x", "10.0.0.1"}} {
			host := "unix://" + sock
			stdout, stderr, code := cli(t, append([]string{"-H", host}, args...)...)
			want := "Cannot connect to the Shoal daemon at " + host + ". Is the shoal daemon running?\n"
			if code != 1 || stdout != "" || stderr != want {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q", sock, args, code, stdout, stderr)
			}
		}
	}
	// SHOAL_HOST is the default of -H.
	t.Setenv("SHOAL_HOST", "unix://"+missing)
	_, stderr, _ := cli(t, "node", "rm", "a", "b")
	if want := "Cannot connect to the Shoal daemon at unix://" + missing + ". Is the shoal daemon running?\n"; stderr != want {
		t.Errorf("with SHOAL_HOST: stderr %q, want %q", stderr, want)
	}
}

func TestDaemonRefusesBadDataDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cli(t, "-H", "unix://"+filepath.Join(dir, "d.sock"), "daemon", "--data-dir", file, "--log-level", "error")
	if code == 0 || stdout != "" || !strings.HasPrefix(stderr, "shoal daemon: ") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = cli(t, "-H", "tcp://x:1", "daemon", "--data-dir", dir)
	if code == 0 || stderr != "shoal daemon: invalid host \"tcp://x:1\": only unix:///path sockets are supported\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
