package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module github.com/shoal-project/shoal\n") {
		t.Fatalf("found %s/go.mod of another module", root)
	}
	if _, err := findModuleRoot("/"); err == nil {
		t.Fatal("findModuleRoot(/) found a go.mod")
	}
}

// TestGoBuild builds a stand-in ./cmd/shoal in a scratch module the way
// BuildShoal builds the real one.
func TestGoBuild(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/scratch\n\ngo 1.21\n",
		"cmd/shoal/main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"scratch shoal\") }\n",
	}
	for name, body := range files {
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := findModuleRoot(filepath.Join(mod, "cmd", "shoal"))
	if err != nil || root != mod {
		t.Fatalf("findModuleRoot = %q, %v; want %q", root, err, mod)
	}
	out := filepath.Join(t.TempDir(), "shoal")
	if err := goBuild(root, "./cmd/shoal", out, false); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(out).Output()
	if err != nil || strings.TrimSpace(string(got)) != "scratch shoal" {
		t.Fatalf("built binary: %q, %v", got, err)
	}
	if err := goBuild(root, "./cmd/missing", out, false); err == nil {
		t.Fatal("building a missing package succeeded")
	}
}
