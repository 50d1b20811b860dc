package main

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Flag values that check what they are given while the command line is
// parsed, so a bad value is a usage error and nothing reaches the daemon.

// enumValue accepts one of a fixed set of words (case-insensitively).
type enumValue struct {
	what    string
	allowed []string
	value   string
}

func newEnum(what, def string, allowed ...string) *enumValue {
	return &enumValue{what: what, allowed: allowed, value: def}
}

func (e *enumValue) String() string { return e.value }
func (e *enumValue) Type() string   { return "string" }

func (e *enumValue) Set(s string) error {
	v := strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(e.allowed, v) {
		return fmt.Errorf("invalid %s %q: must be %s", e.what, s, orList(e.allowed))
	}
	e.value = v
	return nil
}

// orList words a list of choices: "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

var (
	availabilities = map[string]shoalpb.NodeAvailability{
		"active": shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		"pause":  shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE,
		"drain":  shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN,
	}
	roles = map[string]shoalpb.NodeRole{
		"worker":  shoalpb.NodeRole_NODE_ROLE_WORKER,
		"manager": shoalpb.NodeRole_NODE_ROLE_MANAGER,
	}
	logLevels = map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	}
)

// listString shows a list flag's values; an empty list shows as nothing,
// so help does not print a default for it.
func listString(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return "[" + strings.Join(vs, ",") + "]"
}

// filterValue collects -f key=value filters; values of one key are ORed.
type filterValue struct {
	filters map[string][]string
	raw     []string
}

func (f *filterValue) String() string { return listString(f.raw) }
func (f *filterValue) Type() string   { return "filter" }

func (f *filterValue) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("bad format of filter %q (expected name=value)", s)
	}
	if f.filters == nil {
		f.filters = map[string][]string{}
	}
	f.filters[strings.ToLower(k)] = append(f.filters[strings.ToLower(k)], v)
	f.raw = append(f.raw, s)
	return nil
}

func (f *filterValue) proto() map[string]*shoalpb.FilterValues {
	if len(f.filters) == 0 {
		return nil
	}
	out := make(map[string]*shoalpb.FilterValues, len(f.filters))
	for k, vs := range f.filters {
		out[k] = &shoalpb.FilterValues{Values: vs}
	}
	return out
}

// labelAddValue collects --label-add key[=value]; a key alone gets an empty
// value, as in docker.
type labelAddValue struct {
	labels map[string]string
	raw    []string
}

func (l *labelAddValue) String() string { return listString(l.raw) }
func (l *labelAddValue) Type() string   { return "list" }

func (l *labelAddValue) Set(s string) error {
	k, v, _ := strings.Cut(s, "=")
	if strings.TrimSpace(k) == "" {
		return fmt.Errorf("invalid label %q: the key is empty", s)
	}
	if l.labels == nil {
		l.labels = map[string]string{}
	}
	l.labels[k] = v
	l.raw = append(l.raw, s)
	return nil
}

// labelRmValue collects --label-rm keys.
type labelRmValue struct{ keys []string }

func (l *labelRmValue) String() string { return listString(l.keys) }
func (l *labelRmValue) Type() string   { return "list" }

func (l *labelRmValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("invalid label key %q: the key is empty", s)
	}
	l.keys = append(l.keys, s)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
