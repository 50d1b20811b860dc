package harness

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// busybox is the test image made once per test process.
var busybox struct {
	once sync.Once
	tag  string
	err  error
}

// busyboxApplets are the commands the test image offers.
var busyboxApplets = []string{"sh", "sleep", "echo", "cat", "ls", "true", "false", "hostname", "nc", "wget", "httpd", "env", "test", "touch"}

// BusyboxImage returns the tag of an image holding a static busybox (from
// Debian's busybox-static package) and its common applets, imported into
// the local Docker Engine once per test process with a tag of its own, and
// removed by Main. Tests skip when busybox or the engine is missing, except
// under CI, where they fail.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	busybox.once.Do(func() { busybox.tag, busybox.err = importBusybox() })
	if busybox.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("harness: test image: %v", busybox.err)
		}
		t.Skipf("harness: test image: %v", busybox.err)
	}
	return busybox.tag
}

func importBusybox() (string, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("%w (install Debian's busybox-static)", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) error {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
		return "", err
	}
	if err := add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil); err != nil {
		return "", err
	}
	if err := add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}, bin); err != nil {
		return "", err
	}
	for _, a := range busyboxApplets {
		if err := add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	tag := fmt.Sprintf("shoal-it-%d/busybox:1", os.Getpid())
	cmd := exec.Command("docker", "import", "-c", "ENV PATH=/bin", "-", tag)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker import: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return tag, nil
}

// removeImage removes the test image, if one was made.
func removeImage() {
	if busybox.tag != "" {
		exec.Command("docker", "rmi", "-f", busybox.tag).Run()
	}
}
