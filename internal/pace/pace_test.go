package pace

import (
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	now := time.Unix(1000, 0)
	const period, gather = 100 * time.Millisecond, 5 * time.Millisecond
	for _, c := range []struct {
		name   string
		period time.Duration
		last   time.Time
		want   time.Duration
	}{
		{"nothing sent yet", period, time.Time{}, gather},
		{"quiet for longer than a period", period, now.Add(-time.Second), gather},
		{"sent just now", period, now, period},
		{"sent 30ms ago", period, now.Add(-30 * time.Millisecond), 70 * time.Millisecond},
		{"sent 99ms ago", period, now.Add(-99 * time.Millisecond), gather},
		{"period shorter than the gathering time", 2 * time.Millisecond, now.Add(-time.Second), 2 * time.Millisecond},
		{"last batch after now (clock stepped back)", period, now.Add(time.Second), period},
	} {
		if got := Wait(c.period, gather, c.last, now); got != c.want {
			t.Errorf("%s: Wait = %v, want %v", c.name, got, c.want)
		}
	}
}
