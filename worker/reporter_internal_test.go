package worker

import (
	"testing"
	"time"
)

func TestReportDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name string
		last time.Time
		want time.Duration
	}{
		{"never sent", time.Time{}, reportGather},
		{"quiet for longer than an interval", now.Add(-time.Second), reportGather},
		{"sent just now", now, reportInterval},
		{"sent 30ms ago", now.Add(-30 * time.Millisecond), reportInterval - 30*time.Millisecond},
		{"sent 99ms ago", now.Add(-99 * time.Millisecond), reportGather},
	} {
		if got := reportDelay(c.last, now); got != c.want {
			t.Errorf("%s: reportDelay = %v, want %v", c.name, got, c.want)
		}
	}
}
