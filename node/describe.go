package node

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// describe reports this node to the managers.
func (d *Daemon) describe() *shoalpb.NodeDescription {
	return &shoalpb.NodeDescription{
		Hostname:      d.cfg.NodeName,
		Platform:      &shoalpb.Platform{Os: runtime.GOOS, Architecture: archName(runtime.GOARCH)},
		Resources:     &shoalpb.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memTotal()},
		EngineVersion: d.cfg.Version,
	}
}

// archName uses the names docker reports (x86_64 rather than amd64).
func archName(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
