package harness

import (
	"testing"
	"time"
)

// eventuallyInterval is how often Eventually re-checks its condition.
const eventuallyInterval = 75 * time.Millisecond

// Eventually calls cond until it returns nil, every 75 ms, and fails the
// test with msg and cond's last error if that does not happen within
// timeout. cond is always called at least once. Call it from the test's
// goroutine.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(eventuallyInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not satisfied within %v: %v", msg, timeout, err)
		}
		<-tick.C
	}
}
