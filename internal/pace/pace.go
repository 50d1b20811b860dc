// Package pace owns the batching rule shared by the loops that gather
// changes before acting on them — worker status reports, assignment
// streams, orchestration passes: act at most once per period, and after a
// quiet spell wait only a short gathering time, so a lone change is not
// held back for a whole period while a busy loop still batches. It holds
// no state and imports nothing of Shoal.
package pace

import "time"

// Wait returns how long a change arriving at now waits when the last batch
// went at last: the rest of the period, at least gather (or the whole
// period, when that is shorter) and never more than the period. A zero last
// means no batch went yet.
func Wait(period, gather time.Duration, last, now time.Time) time.Duration {
	return max(min(gather, period), min(period, period-now.Sub(last)))
}
