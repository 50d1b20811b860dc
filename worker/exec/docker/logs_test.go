package docker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

func frame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

func readAll(t *testing.T, raw []byte, timestamps bool) []exec.LogLine {
	t.Helper()
	var lines []exec.LogLine
	err := readLogFrames(bufio.NewReader(bytes.NewReader(raw)), timestamps, func(l exec.LogLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestReadLogFrames(t *testing.T) {
	var raw []byte
	raw = append(raw, frame(frameStdout, "one\n")...)
	raw = append(raw, frame(frameStderr, "two\nthree\n")...)
	raw = append(raw, frame(frameStdout, "a long li")...)
	raw = append(raw, frame(frameStdout, "ne\nno newline")...)
	lines := readAll(t, raw, false)
	want := []struct{ stream, data string }{
		{"stdout", "one"}, {"stderr", "two"}, {"stderr", "three"}, {"stdout", "a long line"}, {"stdout", "no newline"},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %q, want %v", lines, want)
	}
	for i, w := range want {
		if lines[i].Stream != w.stream || string(lines[i].Data) != w.data || !lines[i].Time.IsZero() {
			t.Errorf("line %d = %s %q %v, want %s %q", i, lines[i].Stream, lines[i].Data, lines[i].Time, w.stream, w.data)
		}
	}

	ts := "2026-01-02T03:04:05.123456789Z"
	lines = readAll(t, frame(frameStdout, ts+" hello world\n"), true)
	if len(lines) != 1 || string(lines[0].Data) != "hello world" || lines[0].Time.Format(time.RFC3339Nano) != ts {
		t.Fatalf("timestamped line %+v", lines)
	}

	err := readLogFrames(bufio.NewReader(bytes.NewReader(frame(frameStdout, "x\n")[:9])), false, func(exec.LogLine) error { return nil })
	if err == nil {
		t.Fatal("a truncated frame read without error")
	}
	stop := errors.New("stop")
	if err := readLogFrames(bufio.NewReader(bytes.NewReader(raw)), false, func(exec.LogLine) error { return stop }); err != stop {
		t.Fatalf("fn's error: got %v", err)
	}
}

func collect(t *testing.T, c *Controller, opts exec.LogOptions) []exec.LogLine {
	t.Helper()
	var lines []exec.LogLine
	if err := c.Logs(testCtx(t), opts, func(l exec.LogLine) error {
		lines = append(lines, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestLogsFromTheEngine(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	before := time.Now().Add(-time.Second)
	tk := newTask("out:one", "err:two", "out:three")
	c := controller(t, e, tk)
	if st := doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_COMPLETE); st.State != shoalpb.TaskState_TASK_STATE_COMPLETE {
		t.Fatalf("status %v", st)
	}

	// The engine reads stdout and stderr apart: only the order within a
	// stream is kept.
	lines := collect(t, c, exec.LogOptions{Tail: -1})
	got := map[string]string{}
	for _, l := range lines {
		got[l.Stream] += string(l.Data) + " "
	}
	if got[exec.StreamStdout] != "one three " || got[exec.StreamStderr] != "two " || len(lines) != 3 {
		t.Fatalf("logs %q", lines)
	}
	if lines := collect(t, c, exec.LogOptions{Tail: 1}); len(lines) != 1 {
		t.Fatalf("tail 1: %q", lines)
	}
	if lines := collect(t, c, exec.LogOptions{Tail: 0}); len(lines) != 0 {
		t.Fatalf("tail 0: %q", lines)
	}
	lines = collect(t, c, exec.LogOptions{Tail: -1, Timestamps: true})
	for _, l := range lines {
		if l.Time.Before(before) || l.Time.After(time.Now()) || bytes.HasPrefix(l.Data, []byte("20")) {
			t.Fatalf("timestamped line %s %q at %v, not between %v and now", l.Stream, l.Data, l.Time, before)
		}
	}
	if lines := collect(t, c, exec.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}); len(lines) != 0 {
		t.Fatalf("lines since an hour from now: %q", lines)
	}
	if err := c.Logs(ctx, exec.LogOptions{Tail: -2}, func(exec.LogLine) error { return nil }); err == nil || !strings.Contains(err.Error(), "-2") {
		t.Fatalf("tail -2: %v", err)
	}
}

func TestLogsFollowUntilExit(t *testing.T) {
	e := newExecutor(t)
	ctx := testCtx(t)
	tk := newTask("out:a", "pause:300ms", "err:b", "pause:300ms", "out:c")
	c := controller(t, e, tk)
	doUntil(t, ctx, tk, c, shoalpb.TaskState_TASK_STATE_RUNNING)
	lines := collect(t, c, exec.LogOptions{Follow: true, Tail: -1})
	var got []string
	for _, l := range lines {
		got = append(got, string(l.Data))
	}
	if strings.Join(got, "") != "abc" || lines[1].Stream != exec.StreamStderr {
		t.Fatalf("followed %q", lines)
	}
	// Following ended with the container: it has exited.
	if info := inspect(t, ctx, c); info.State.Running {
		t.Fatal("Logs with Follow returned while the container runs")
	}

	gone := controller(t, e, newTask())
	err := gone.Logs(ctx, exec.LogOptions{Tail: -1}, func(exec.LogLine) error { return nil })
	if !errors.Is(err, exec.ErrTaskNotFound) {
		t.Fatalf("logs of a missing container: %v", err)
	}
}
