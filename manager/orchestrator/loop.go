package orchestrator

import (
	"context"
	"log/slog"
	"time"

	"github.com/shoal-project/shoal/internal/pace"
	"github.com/shoal-project/shoal/manager/store"
)

// Reconciler is the logic of one loop; Run drives it.
type Reconciler interface {
	// Observe notes what a store event makes stale. It runs for every
	// event, so it must be cheap: no store reads.
	Observe(ev store.Event)
	// Pending reports whether Observe noted anything.
	Pending() bool
	// Reconcile brings what was noted — everything, when full is set —
	// in line with the store, writes the result and forgets what it
	// handled. An error makes Run retry with a full pass.
	Reconcile(ctx context.Context, full bool) error
	// Wake returns when Reconcile must run again without an event (a
	// delayed restart falls due), or the zero time.
	Wake() time.Time
}

// batchGather is how long events arriving after a quiet spell are
// coalesced: long enough for the events of one command to arrive
// together, short enough not to delay a lone change (a task that stopped
// and is waited for by a rolling update).
const batchGather = 5 * time.Millisecond

// Run drives r until ctx ends: a full pass first (this manager just became
// leader), then a pass per batch of events, at most one per cfg.BatchDelay.
// When the store is restored from a snapshot, or the watch is cut off
// because the loop fell behind, it re-reads everything. cfg must have its
// defaults applied.
func Run(ctx context.Context, cfg Config, name string, r Reconciler) {
	log := cfg.Log.With("component", name)
	for ctx.Err() == nil {
		// Subscribing before the full pass reads the store means no
		// change is missed; a change seen twice is reconciled twice,
		// which is harmless.
		events, cancel := cfg.Store.Watch()
		watch(ctx, cfg, log, r, events)
		cancel()
	}
}

func watch(ctx context.Context, cfg Config, log *slog.Logger, r Reconciler, events <-chan store.Event) {
	full, run := true, true
	var batchC, retryC, wakeC <-chan time.Time
	var wakeAt, lastPass time.Time
	for {
		if run {
			run = false
			err := r.Reconcile(ctx, full)
			lastPass = time.Now()
			full = false
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("reconcile failed; retrying with a full pass", "err", err, "after", cfg.RetryDelay)
				if retryC == nil {
					retryC = time.After(cfg.RetryDelay)
				}
			}
			// Only a pass changes when to wake. After a failed write
			// the retry comes first: a delayed start already due would
			// otherwise spin against the failing proposer.
			if w := r.Wake(); retryC == nil && !w.Equal(wakeAt) {
				wakeAt, wakeC = w, nil
				if !w.IsZero() {
					wakeC = cfg.After(w.Sub(cfg.Now()))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				log.Debug("store watch closed; re-reading the store")
				return
			}
			if ev.Kind == store.EventRestore {
				full = true
			} else {
				r.Observe(ev)
			}
			if batchC == nil && (full || r.Pending()) {
				// Passes are at least BatchDelay apart.
				batchC = time.After(pace.Wait(cfg.BatchDelay, batchGather, lastPass, time.Now()))
			}
		case <-batchC:
			batchC, run = nil, true
		case <-wakeC:
			wakeC, wakeAt, run = nil, time.Time{}, true
		case <-retryC:
			retryC, full, run = nil, true, true
		}
	}
}
