package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pidModulus bounds the pid part of lab names so they stay short.
const pidModulus = 100000

var (
	// Namespaces: <prefix>-lan, <prefix>-h<N>, prefix sh<pid%100000>x<seq>.
	staleNetNSRe = regexp.MustCompile(`^sh([0-9]{1,5})x[0-9]+-(lan|h[0-9]+)$`)
	// Lab directories: <prefix>-<random>.
	staleLabDirRe = regexp.MustCompile(`^sh([0-9]{1,5})x[0-9]+-[0-9]+$`)
	// Build directories: shoal-harness-build-<pid>-<random>.
	staleBuildDirRe = regexp.MustCompile(`^shoal-harness-build-([0-9]+)-[0-9]+$`)
)

const (
	// labMarker marks a directory as created by this harness; only marked
	// directories are ever swept.
	labMarker = ".shoal-harness-lab"
	// keepMarker marks a lab directory kept on purpose (SHOAL_KEEP_LAB=1);
	// it is never swept.
	keepMarker = "KEPT"
)

// writeSysctlsIn writes sysctl values inside the named network namespace.
// Keys whose file does not exist there (module not loaded, IPv6 disabled
// in the kernel) are ignored.
func writeSysctlsIn(netns string, kv [][2]string) error {
	errc := make(chan error, 1)
	go func() {
		// The thread switches namespace and back. It must be unlocked
		// afterwards: a thread that ends takes with it the children forked
		// from it (their parent-death signal fires), which could be any
		// lab's daemons. Only if switching back fails does it stay locked
		// and end with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		errc <- func() error {
			f, err := os.Open(nsPath(netns))
			if err != nil {
				return err
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns %s: %w", netns, err)
			}
			for _, p := range kv {
				file := "/proc/sys/" + strings.ReplaceAll(p[0], ".", "/")
				err := os.WriteFile(file, []byte(p[1]+"\n"), 0o644)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("sysctl %s=%s in %s: %w", p[0], p[1], netns, err)
				}
			}
			return nil
		}()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-errc
}

// nsSysctls isolates a lab namespace: no IPv6 (addresses stay in
// 198.18.0.0/15) and no bridge netfilter, so bridged frames are never
// handed to iptables.
var nsSysctls = [][2]string{
	{"net.ipv6.conf.all.disable_ipv6", "1"},
	{"net.ipv6.conf.default.disable_ipv6", "1"},
	{"net.bridge.bridge-nf-call-iptables", "0"},
	{"net.bridge.bridge-nf-call-ip6tables", "0"},
	{"net.bridge.bridge-nf-call-arptables", "0"},
}

// livePIDMods returns pid%pidModulus of every running process. A lab name
// carries only that residue, so a name is stale only if no running process
// maps to it (conservative when pid_max exceeds the modulus).
func livePIDMods() (map[int]bool, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	live := make(map[int]bool, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			live[pid%pidModulus] = true
		}
	}
	return live, nil
}

func pidAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// sweepStale deletes namespaces and directories left behind by harness
// processes that no longer exist. Errors are collected but sweeping goes on.
func sweepStale() error {
	live, err := livePIDMods()
	if err != nil {
		return err
	}
	stale := func(re *regexp.Regexp, name string) bool {
		m := re.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		n, err := strconv.Atoi(m[1])
		return err == nil && !live[n]
	}
	var errs []error

	// Namespaces: hosts before LANs, so veth pairs go away with their hosts.
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		var hosts, lans []string
		for _, e := range ents {
			if !stale(staleNetNSRe, e.Name()) {
				continue
			}
			if strings.HasSuffix(e.Name(), "-lan") {
				lans = append(lans, e.Name())
			} else {
				hosts = append(hosts, e.Name())
			}
		}
		for _, ns := range append(hosts, lans...) {
			if err := ipCmd("netns", "delete", ns); err != nil {
				// Another process may be sweeping the same leftovers.
				if _, serr := os.Stat(nsPath(ns)); serr == nil {
					errs = append(errs, err)
				}
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}

	// Lab and build directories in the temp directories the harness uses.
	for _, base := range tempBases() {
		ents, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			dir := filepath.Join(base, e.Name())
			switch {
			case stale(staleLabDirRe, e.Name()):
				if !exists(filepath.Join(dir, labMarker)) || exists(filepath.Join(dir, keepMarker)) {
					continue
				}
			case staleBuildDirRe.MatchString(e.Name()):
				m := staleBuildDirRe.FindStringSubmatch(e.Name())
				pid, err := strconv.Atoi(m[1])
				if err != nil || pidAlive(pid) || !exists(filepath.Join(dir, labMarker)) {
					continue
				}
			default:
				continue
			}
			if err := unmountUnder(dir); err != nil {
				errs = append(errs, err)
			}
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount at or below dir, deepest first: the
// daemons bind-mount network namespaces in their data directories (the
// overlay's sandboxes), and a killed daemon leaves them mounted.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	// Deepest first; a path mounted several times is detached as often.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// tempBases lists the directories lab and build directories are created in.
func tempBases() []string {
	bases := []string{labBase()}
	if t := os.TempDir(); t != bases[0] {
		bases = append(bases, t)
	}
	return bases
}

// labBase is the parent of lab directories: the temp directory, unless it
// is so long that unix socket paths below it could exceed the 107-byte
// limit, in which case /tmp.
func labBase() string {
	t := os.TempDir()
	if len(t) > 60 {
		return "/tmp"
	}
	return t
}
