package orchestrator

import (
	"testing"
	"time"
)

func TestBatchWait(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name  string
		delay time.Duration
		last  time.Time
		want  time.Duration
	}{
		{"first pass long ago", 30 * time.Millisecond, now.Add(-time.Second), batchGather},
		{"pass just ended", 30 * time.Millisecond, now, 30 * time.Millisecond},
		{"pass 10ms ago", 30 * time.Millisecond, now.Add(-10 * time.Millisecond), 20 * time.Millisecond},
		{"delay shorter than the gathering time", 2 * time.Millisecond, now.Add(-time.Second), 2 * time.Millisecond},
	} {
		if got := batchWait(c.delay, c.last, now); got != c.want {
			t.Errorf("%s: batchWait = %v, want %v", c.name, got, c.want)
		}
	}
}
