package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds one `go build` of the shoal binary.
const buildTimeout = 10 * time.Minute

var builds struct {
	mu   sync.Mutex
	dir  string // per-process build directory, created lazily
	once [2]sync.Once
	path [2]string
	err  [2]error
}

// BuildShoal builds ./cmd/shoal of the module containing the working
// directory, once per test process and flavour, and returns the binary's
// path. With race=true the binary is built with -race. A failed build fails
// every test that asks for it, with the compiler output.
//
// The binary lives in a per-process temporary directory; Main (or
// RemoveBuilds) deletes it when the tests are done, and NewLab sweeps
// directories of build processes that died.
func BuildShoal(t testing.TB, race bool) string {
	t.Helper()
	i := 0
	if race {
		i = 1
	}
	builds.once[i].Do(func() {
		builds.path[i], builds.err[i] = buildShoal(race)
	})
	if builds.err[i] != nil {
		t.Fatalf("harness: building shoal: %v", builds.err[i])
	}
	return builds.path[i]
}

func buildShoal(race bool) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return "", err
	}
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	name := "shoal"
	if race {
		name = "shoal-race"
	}
	out := filepath.Join(dir, name)
	return out, goBuild(root, "./cmd/shoal", out, race)
}

// findModuleRoot walks up from dir to the first directory holding go.mod.
func findModuleRoot(dir string) (string, error) {
	dir = filepath.Clean(dir)
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && st.Mode().IsRegular() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

func buildDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		return builds.dir, nil
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("shoal-harness-build-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, labMarker), nil, 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	builds.dir = dir
	return dir, nil
}

// goBuild builds pkg of the module at root into out.
func goBuild(root, pkg, out string, race bool) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go tool not found: %w", err)
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = root
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = os.Environ()
	if race {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	}
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, outb)
	}
	return nil
}

// RemoveBuilds deletes the binaries built by BuildShoal in this process.
// Call it only after every test using them has finished (Main does).
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir = ""
	}
}

// Main runs the tests of a package using the harness, removes the built
// binaries and the test image, runs the given cleanups and exits. Use it
// from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	RemoveBuilds()
	removeImage()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}
