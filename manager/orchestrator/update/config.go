package update

import (
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Docker's defaults for an unset UpdateConfig or an unset field of one.
const (
	// DefaultParallelism applies when a service has no update (or
	// rollback) config; a config's parallelism 0 means all at once.
	DefaultParallelism = 1
	// DefaultMonitor is how long after it starts a new task's failure
	// counts against the update.
	DefaultMonitor = 5 * time.Second
	// DefaultTaskTimeout is how long a new task may take to be RUNNING
	// before it counts as failed.
	DefaultTaskTimeout = 2 * time.Minute
	// StopSlack is added to the stop grace period of a task being
	// replaced stop-first: its replacement starts at the latest that long
	// after it was made, even if the old task never reports stopping.
	StopSlack = 10 * time.Second
	// defaultStopGrace is the cluster's default stop grace period.
	defaultStopGrace = 10 * time.Second
)

// settings are an UpdateConfig with the defaults applied.
type settings struct {
	parallelism int // 0: unlimited
	delay       time.Duration
	action      shoalpb.UpdateConfig_FailureAction
	monitor     time.Duration
	ratio       float64
	startFirst  bool
	timeout     time.Duration // 0: none
}

func settingsOf(c *shoalpb.UpdateConfig) settings {
	if c == nil {
		return settings{parallelism: DefaultParallelism, monitor: DefaultMonitor, timeout: DefaultTaskTimeout}
	}
	s := settings{
		parallelism: int(min(c.GetParallelism(), 1<<30)),
		delay:       time.Duration(max(0, c.GetDelayNs())),
		action:      c.GetFailureAction(),
		monitor:     DefaultMonitor,
		ratio:       float64(c.GetMaxFailureRatio()),
		startFirst:  c.GetOrder() == shoalpb.UpdateConfig_ORDER_START_FIRST,
		timeout:     DefaultTaskTimeout,
	}
	if c.MonitorNs != nil {
		s.monitor = time.Duration(max(0, *c.MonitorNs))
	}
	if c.TaskTimeoutNs != nil {
		s.timeout = time.Duration(max(0, *c.TaskTimeoutNs))
	}
	return s
}

// stopWait is how long the replacement of t, made stop-first, waits for t
// to stop before it starts anyway.
func stopWait(t *shoalpb.Task) time.Duration {
	grace := defaultStopGrace
	if g := t.GetSpec().GetContainer().StopGracePeriodNs; g != nil {
		grace = time.Duration(max(0, *g))
	}
	return grace + StopSlack
}
