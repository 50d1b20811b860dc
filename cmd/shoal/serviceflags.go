package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-project/shoal/manager/constraint"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Flag values of service create, each checking its value while the
// command line is parsed, in docker's syntax.

// uintValue is a non-negative integer flag.
type uintValue struct{ v uint64 }

func (u *uintValue) String() string { return strconv.FormatUint(u.v, 10) }
func (u *uintValue) Type() string   { return "uint" }

func (u *uintValue) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a non-negative integer", s)
	}
	u.v = v
	return nil
}

// durationValue is a non-negative Go duration; with min set, a non-zero
// value must be at least min.
type durationValue struct {
	d   time.Duration
	min time.Duration
}

func (d *durationValue) String() string {
	if d.d == 0 {
		return ""
	}
	return d.d.String()
}
func (d *durationValue) Type() string { return "duration" }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number and a unit (ns, us, ms, s, m, h), such as 10s or 1m30s", s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	if v != 0 && v < d.min {
		return fmt.Errorf("invalid duration %q: must be at least %s (or 0)", s, d.min)
	}
	d.d = v
	return nil
}

// sizeValue is a byte count in docker's units: 512m, 1g, 1.5GiB, 4096.
type sizeValue struct{ bytes int64 }

func (s *sizeValue) String() string {
	if s.bytes == 0 {
		return ""
	}
	return binarySize(s.bytes)
}
func (s *sizeValue) Type() string { return "bytes" }

func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.bytes = n
	return nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

// parseSize reads a size with an optional binary unit (b, k, m, g, t, p;
// "KiB", "kb" and "k" all mean 1024 bytes).
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: use a number with an optional unit b, k, m, g, t or p (such as 512m or 1g)", s)
	}
	num, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	mult := 1.0
	if m[2] != "" {
		mult = math.Pow(1024, float64(strings.IndexByte("kmgtp", strings.ToLower(m[2])[0])+1))
	}
	v := num * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// cpuValue is a number of CPUs (0.5, 2), kept as nano CPUs.
type cpuValue struct{ nano int64 }

func (c *cpuValue) String() string {
	if c.nano == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(c.nano)/1e9, 'f', -1, 64)
}
func (c *cpuValue) Type() string { return "decimal" }

func (c *cpuValue) Set(s string) error {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok || r.Sign() < 0 {
		return fmt.Errorf("invalid number of CPUs %q: use a non-negative decimal number such as 0.5 or 2", s)
	}
	nano := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return fmt.Errorf("invalid number of CPUs %q: too precise (at most 9 decimals)", s)
	}
	if !nano.Num().IsInt64() {
		return fmt.Errorf("invalid number of CPUs %q: too large", s)
	}
	c.nano = nano.Num().Int64()
	return nil
}

// envValue collects -e KEY=VALUE entries. A KEY alone takes its value from
// the client's environment when set there, as docker does.
type envValue struct {
	entries []string
	lookup  func(string) (string, bool)
}

func (e *envValue) String() string { return listString(e.entries) }
func (e *envValue) Type() string   { return "list" }

func (e *envValue) Set(s string) error {
	k, _, hasValue := strings.Cut(s, "=")
	if strings.TrimSpace(k) == "" {
		return fmt.Errorf("invalid environment variable %q: the name is empty", s)
	}
	if !hasValue {
		lookup := e.lookup
		if lookup == nil {
			lookup = os.LookupEnv
		}
		if v, ok := lookup(k); ok {
			s = k + "=" + v
		}
	}
	e.entries = append(e.entries, s)
	return nil
}

// constraintValue collects --constraint expressions, each parsed as the
// scheduler will parse it.
type constraintValue struct{ exprs []string }

func (c *constraintValue) String() string { return listString(c.exprs) }
func (c *constraintValue) Type() string   { return "list" }

func (c *constraintValue) Set(s string) error {
	if _, err := constraint.Parse([]string{s}); err != nil {
		return err
	}
	c.exprs = append(c.exprs, s)
	return nil
}

// placementPrefValue collects --placement-pref spread=<descriptor>.
type placementPrefValue struct {
	prefs []*shoalpb.PlacementPreference
	raw   []string
}

func (p *placementPrefValue) String() string { return listString(p.raw) }
func (p *placementPrefValue) Type() string   { return "pref" }

func (p *placementPrefValue) Set(s string) error {
	strategy, arg, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(arg) == "" {
		return fmt.Errorf("invalid placement preference %q: must be spread=<descriptor>, such as spread=node.labels.zone", s)
	}
	if !strings.EqualFold(strings.TrimSpace(strategy), "spread") {
		return fmt.Errorf("invalid placement preference %q: unsupported strategy %q (only spread is supported)", s, strategy)
	}
	p.prefs = append(p.prefs, &shoalpb.PlacementPreference{SpreadDescriptor: strings.TrimSpace(arg)})
	p.raw = append(p.raw, s)
	return nil
}

// shellWordsValue splits its value into words as a shell would (quotes
// and backslashes; no expansion): --entrypoint "sh -c".
type shellWordsValue struct {
	words []string
	raw   string
}

func (w *shellWordsValue) String() string { return w.raw }
func (w *shellWordsValue) Type() string   { return "command" }

func (w *shellWordsValue) Set(s string) error {
	words, err := splitShellWords(s)
	if err != nil {
		return fmt.Errorf("invalid command %q: %v", s, err)
	}
	w.words, w.raw = words, s
	return nil
}

func splitShellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if escaped {
		return nil, errors.New("it ends with a backslash")
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// mountValue collects --mount type=…,source=…,target=…,… entries.
type mountValue struct {
	mounts []*shoalpb.Mount
	raw    []string
}

func (m *mountValue) String() string { return listString(m.raw) }
func (m *mountValue) Type() string   { return "mount" }

func (m *mountValue) Set(s string) error {
	mnt, err := parseMount(s)
	if err != nil {
		return err
	}
	m.mounts = append(m.mounts, mnt)
	m.raw = append(m.raw, s)
	return nil
}

var mountTypes = map[string]shoalpb.Mount_Type{
	"bind":   shoalpb.Mount_TYPE_BIND,
	"volume": shoalpb.Mount_TYPE_VOLUME,
	"tmpfs":  shoalpb.Mount_TYPE_TMPFS,
}

// parseMount reads docker's --mount syntax: comma-separated key=value
// fields (CSV, so a field may be quoted), the type defaulting to volume.
func parseMount(s string) (*shoalpb.Mount, error) {
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return nil, fmt.Errorf("invalid mount %q: %v", s, err)
	}
	m := &shoalpb.Mount{Type: shoalpb.Mount_TYPE_VOLUME}
	var bindOpt, volumeOpt, tmpfsOpt string
	for _, f := range fields {
		key, val, hasValue := strings.Cut(f, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		switch key {
		case "readonly", "ro", "volume-nocopy":
			b := true
			if hasValue {
				if b, err = strconv.ParseBool(val); err != nil {
					return nil, fmt.Errorf("invalid mount field %q: %s must be true or false", f, key)
				}
			}
			if key == "volume-nocopy" {
				m.VolumeNocopy, volumeOpt = b, key
			} else {
				m.ReadOnly = b
			}
			continue
		}
		if !hasValue {
			return nil, fmt.Errorf("invalid mount field %q: must be a key=value pair", f)
		}
		switch key {
		case "type":
			t, ok := mountTypes[strings.ToLower(val)]
			if !ok {
				return nil, fmt.Errorf("invalid mount type %q: must be bind, volume or tmpfs", val)
			}
			m.Type = t
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "bind-propagation":
			m.BindPropagation, bindOpt = strings.ToLower(val), key
		case "volume-driver":
			m.VolumeDriver, volumeOpt = val, key
		case "volume-label", "volume-opt":
			k, v, _ := strings.Cut(val, "=")
			if k == "" {
				return nil, fmt.Errorf("invalid mount field %q: the key is empty", f)
			}
			if key == "volume-label" {
				m.VolumeLabels = setKey(m.VolumeLabels, k, v)
			} else {
				m.VolumeDriverOptions = setKey(m.VolumeDriverOptions, k, v)
			}
			volumeOpt = key
		case "tmpfs-size":
			n, err := parseSize(val)
			if err != nil {
				return nil, fmt.Errorf("invalid mount field %q: %v", f, err)
			}
			m.TmpfsSizeBytes, tmpfsOpt = n, key
		case "tmpfs-mode":
			mode, err := strconv.ParseUint(val, 8, 32)
			if err != nil || mode > 0o7777 {
				return nil, fmt.Errorf("invalid mount field %q: tmpfs-mode must be an octal file mode such as 1777", f)
			}
			m.TmpfsMode, tmpfsOpt = uint32(mode), key
		default:
			return nil, fmt.Errorf("invalid mount field %q: unknown key %q", f, key)
		}
	}
	kind := strings.ToLower(strings.TrimPrefix(m.Type.String(), "TYPE_"))
	switch {
	case bindOpt != "" && m.Type != shoalpb.Mount_TYPE_BIND:
		return nil, fmt.Errorf("invalid mount %q: %s is for bind mounts, not %s", s, bindOpt, kind)
	case volumeOpt != "" && m.Type != shoalpb.Mount_TYPE_VOLUME:
		return nil, fmt.Errorf("invalid mount %q: %s is for volume mounts, not %s", s, volumeOpt, kind)
	case tmpfsOpt != "" && m.Type != shoalpb.Mount_TYPE_TMPFS:
		return nil, fmt.Errorf("invalid mount %q: %s is for tmpfs mounts, not %s", s, tmpfsOpt, kind)
	case m.Target == "":
		return nil, fmt.Errorf("invalid mount %q: target is required", s)
	case !path.IsAbs(m.Target):
		return nil, fmt.Errorf("invalid mount %q: target %q is not an absolute path", s, m.Target)
	case m.Type == shoalpb.Mount_TYPE_BIND && m.Source == "":
		return nil, fmt.Errorf("invalid mount %q: a bind mount needs a source", s)
	case m.Type == shoalpb.Mount_TYPE_BIND && !path.IsAbs(m.Source):
		return nil, fmt.Errorf("invalid mount %q: bind source %q is not an absolute path", s, m.Source)
	case m.Type == shoalpb.Mount_TYPE_TMPFS && m.Source != "":
		return nil, fmt.Errorf("invalid mount %q: a tmpfs mount takes no source", s)
	}
	return m, nil
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
