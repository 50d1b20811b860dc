package dispatcher

import (
	"testing"
	"time"
)

func TestFlushDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name string
		last time.Time
		want time.Duration
	}{
		{"never sent", time.Time{}, assignmentGather},
		{"quiet for longer than a period", now.Add(-time.Second), assignmentGather},
		{"sent just now", now, assignmentFlush},
		{"sent 20ms ago", now.Add(-20 * time.Millisecond), assignmentFlush - 20*time.Millisecond},
		{"sent 48ms ago", now.Add(-48 * time.Millisecond), assignmentGather},
	} {
		if got := flushDelay(c.last, now); got != c.want {
			t.Errorf("%s: flushDelay = %v, want %v", c.name, got, c.want)
		}
	}
}
