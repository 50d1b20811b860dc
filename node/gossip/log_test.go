package gossip

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recordHandler keeps every record it is given.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLevelWriterMapsMemberlistLevels(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "memberlist: Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking node-b as failed\n", slog.LevelInfo, "memberlist: Marking node-b as failed"},
		{"[WARN] memberlist: Was able to connect to node-b over TCP but UDP probes failed\n", slog.LevelWarn, "memberlist: Was able to connect to node-b over TCP but UDP probes failed"},
		{"[ERR] memberlist: Failed to decrypt\n", slog.LevelError, "memberlist: Failed to decrypt"},
		{"no level prefix\n", slog.LevelInfo, "no level prefix"},
		{"[ERR]", slog.LevelError, ""},
	} {
		h := &recordHandler{}
		w := &levelWriter{log: slog.New(h)}
		n, err := w.Write([]byte(tc.line))
		if err != nil || n != len(tc.line) {
			t.Errorf("Write(%q) = (%d, %v), want (%d, nil)", tc.line, n, err, len(tc.line))
		}
		if len(h.recs) != 1 {
			t.Fatalf("Write(%q) logged %d records, want 1", tc.line, len(h.recs))
		}
		r := h.recs[0]
		if r.Level != tc.level || r.Message != tc.msg {
			t.Errorf("Write(%q) logged %v %q, want %v %q", tc.line, r.Level, r.Message, tc.level, tc.msg)
		}
		component := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" {
				component = a.Value.String()
			}
			return true
		})
		if component != "gossip" {
			t.Errorf("Write(%q): component %q, want gossip", tc.line, component)
		}
	}
}
