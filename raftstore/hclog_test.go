package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// records decodes JSON log lines.
func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newTestAdapter(level slog.Level) (*hclogAdapter, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})
	return newHCLogger(slog.New(h), "raft"), &buf
}

func TestHCLogAdapterLevelsAndArgs(t *testing.T) {
	a, buf := newTestAdapter(LevelTrace)
	a.Trace("t")
	a.Debug("d")
	a.Info("i", "peer", "n2", "term", 7)
	a.Warn("w", "error", errors.New("boom"))
	a.Error("e", 42, "non-string key", "dangling")
	a.Log(hclog.NoLevel, "none")
	a.Log(hclog.Off, "off")

	recs := records(t, buf)
	wantLevels := []string{"DEBUG-4", "DEBUG", "INFO", "WARN", "ERROR", "INFO"}
	if len(recs) != len(wantLevels) {
		t.Fatalf("got %d records, want %d: %v", len(recs), len(wantLevels), recs)
	}
	for i, want := range wantLevels {
		if recs[i]["level"] != want {
			t.Errorf("record %d level = %v, want %s", i, recs[i]["level"], want)
		}
		if recs[i]["component"] != "raft" {
			t.Errorf("record %d component = %v", i, recs[i]["component"])
		}
	}
	if recs[2]["peer"] != "n2" || recs[2]["term"] != float64(7) {
		t.Errorf("info attrs = %v", recs[2])
	}
	if recs[3]["error"] != "boom" {
		t.Errorf("error attr = %v", recs[3]["error"])
	}
	if recs[4]["42"] != "non-string key" || recs[4]["EXTRA_VALUE_AT_END"] != "dangling" {
		t.Errorf("odd args = %v", recs[4])
	}
}

func TestHCLogAdapterDerivedLoggers(t *testing.T) {
	a, buf := newTestAdapter(slog.LevelInfo)
	if a.IsDebug() || a.IsTrace() || !a.IsInfo() || !a.IsError() {
		t.Fatal("Is* does not follow the slog handler level")
	}
	if a.GetLevel() != hclog.Info {
		t.Fatalf("GetLevel = %v, want Info", a.GetLevel())
	}
	a.Debug("hidden")

	named := a.Named("net").With("peer", "n3", "fmt", hclog.Fmt("%d-%s", 1, "x"))
	named.Info("hello")
	reset := named.ResetNamed("snap")
	reset.Info("again")
	if named.Name() != "raft.net" || reset.Name() != "snap" {
		t.Fatalf("names = %q, %q", named.Name(), reset.Name())
	}
	if got := named.ImpliedArgs(); len(got) != 4 {
		t.Fatalf("ImpliedArgs = %v", got)
	}

	a.SetLevel(hclog.Error)
	named.Warn("suppressed by SetLevel")
	a.Error("kept")
	a.SetLevel(hclog.NoLevel)

	a.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] from stdlib")

	recs := records(t, buf)
	if len(recs) != 4 {
		t.Fatalf("got %d records: %v", len(recs), recs)
	}
	if recs[0]["component"] != "raft.net" || recs[0]["peer"] != "n3" || recs[0]["fmt"] != "1-x" {
		t.Errorf("named record = %v", recs[0])
	}
	if recs[1]["component"] != "snap" || recs[1]["peer"] != "n3" {
		t.Errorf("reset record = %v", recs[1])
	}
	if recs[2]["msg"] != "kept" {
		t.Errorf("SetLevel record = %v", recs[2])
	}
	if recs[3]["level"] != "WARN" || recs[3]["msg"] != "from stdlib" {
		t.Errorf("stdlib record = %v", recs[3])
	}
}
