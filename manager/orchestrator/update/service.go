package update

import (
	"cmp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/orchestrator/restart"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

type slotKey = restart.SlotKey

// slotsOf groups the tasks of svc by slot — replica number for replicated
// services, node for global ones — each slot oldest first, and returns the
// slots in order.
func slotsOf(svc *shoalpb.Service, tasks []*shoalpb.Task) (map[slotKey][]*shoalpb.Task, []slotKey) {
	global := orchestrator.ModeOf(svc) == orchestrator.ModeGlobal
	slots := map[slotKey][]*shoalpb.Task{}
	for _, t := range tasks {
		k := slotKey{ServiceID: svc.Id}
		switch {
		case global && t.GetNodeId() != "":
			k.NodeID = t.NodeId
		case !global && t.GetSlot() != 0:
			k.Slot = t.Slot
		default:
			continue
		}
		slots[k] = append(slots[k], t)
	}
	keys := make([]slotKey, 0, len(slots))
	for k, hist := range slots {
		orchestrator.SortByAge(hist)
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b slotKey) int {
		if c := cmp.Compare(a.Slot, b.Slot); c != 0 {
			return c
		}
		return cmp.Compare(a.NodeID, b.NodeID)
	})
	return slots, keys
}

// outdated reports whether t is a runnable task the update must replace:
// made from another spec version, with another task spec or endpoint (host
// ports, mode). (After a rollback, tasks of the spec restored are up to
// date again.)
func outdated(svc *shoalpb.Service, t *shoalpb.Task) bool {
	return orchestrator.IsRunnable(t) && t.GetSpecVersion() != svc.GetSpecVersion() &&
		(!proto.Equal(t.GetSpec(), svc.GetSpec().GetTask()) ||
			orchestrator.EndpointNeedsNewTasks(t.GetEndpoint().GetSpec(), svc.GetSpec().GetEndpoint(), t.GetEndpoint() != nil))
}

// dirtySlots returns the slots holding an outdated task that may be
// replaced: for a global service, only on nodes that take new tasks (the
// global orchestrator shuts down tasks on nodes that no longer fit).
func (u *Updater) dirtySlots(svc *shoalpb.Service, slots map[slotKey][]*shoalpb.Task, nodes orchestrator.Nodes) map[slotKey]bool {
	dirty := map[slotKey]bool{}
	for k, hist := range slots {
		if !slices.ContainsFunc(hist, func(t *shoalpb.Task) bool { return outdated(svc, t) }) {
			continue
		}
		if k.NodeID != "" {
			if _, place := orchestrator.GlobalFit(nodes[k.NodeID], svc.GetSpec().GetTask(), u.cfg.NodeFilter); !place {
				continue
			}
		}
		dirty[k] = true
	}
	return dirty
}

// reconcile queues what svc needs and returns when it must be looked at
// again without an event (or the zero time).
func (u *Updater) reconcile(tb, sb *orchestrator.Batch, tx store.ReadTx, svc *shoalpb.Service, nodes orchestrator.Nodes, now time.Time) time.Time {
	if m := orchestrator.ModeOf(svc); m != orchestrator.ModeReplicated && m != orchestrator.ModeGlobal {
		delete(u.runs, svc.Id)
		return time.Time{}
	}
	slots, keys := slotsOf(svc, tx.TasksByService(svc.Id))
	wake := u.startReplacements(tb, slots, keys, nodes, now)
	state := svc.GetUpdateStatus().GetState()
	switch state {
	case shoalpb.UpdateStatus_STATE_PAUSED, shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED:
		// Paused until the service is updated again.
		delete(u.runs, svc.Id)
		return wake
	}
	dirty := u.dirtySlots(svc, slots, nodes)
	if state != shoalpb.UpdateStatus_STATE_UPDATING && state != shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED {
		delete(u.runs, svc.Id)
		if len(dirty) > 0 {
			// Outdated tasks with no update in progress (the spec was
			// written by something other than the control API, or a node
			// taking tasks again holds one): start an update. Its tasks
			// are made once the status is stored.
			u.cfg.Log.Info("update started", "service", svc.GetSpec().GetName(), "slots", len(dirty))
			sb.Add(nil, statusAction(svc, &shoalpb.UpdateStatus{
				State: shoalpb.UpdateStatus_STATE_UPDATING, StartedAt: now.UnixNano(), Message: "update in progress",
			}))
		}
		return wake
	}
	r := u.runs[svc.Id]
	if r == nil || r.key != keyOf(svc) {
		r = newRun(svc)
		u.runs[svc.Id] = r
	}
	return earliest(wake, u.step(r, tb, sb, svc, slots, keys, dirty, nodes, now))
}

// startReplacements starts the stop-first replacements that are
// prepared (observed READY: starting one while its worker prepares it
// would interrupt that) and whose predecessor stopped, lost its node, or
// had its stop grace period (plus StopSlack) to stop. It returns when the
// next one falls due.
func (u *Updater) startReplacements(tb *orchestrator.Batch, slots map[slotKey][]*shoalpb.Task, keys []slotKey, nodes orchestrator.Nodes, now time.Time) time.Time {
	var wake time.Time
	for _, k := range keys {
		hist := slots[k]
		for _, t := range hist {
			if !restart.WaitingReplacement(t, hist) || t.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_READY {
				continue
			}
			prev := restart.Replaced(t, hist)
			if restart.HoldsContainer(prev) && !orchestrator.IsDown(nodes[prev.GetNodeId()]) {
				due := unixNano(t.GetMeta().GetCreatedAt()).Add(stopWait(prev))
				if now.Before(due) {
					wake = earliest(wake, due)
					continue
				}
				u.cfg.Log.Warn("starting a replacement before the task it replaces stopped", "task", t.Id, "replaces", prev.Id, "waited", now.Sub(unixNano(t.GetMeta().GetCreatedAt())))
			}
			tb.SetDesiredState(t.Id, shoalpb.TaskState_TASK_STATE_RUNNING, now, nil)
		}
	}
	return wake
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns) }

// earliest returns the earlier of two wake times, the zero time meaning
// none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// statusAction returns the write of svc with status st, at the version
// read: it fails if the service changed since.
func statusAction(svc *shoalpb.Service, st *shoalpb.UpdateStatus) *shoalpb.StoreAction {
	s := proto.Clone(svc).(*shoalpb.Service)
	s.UpdateStatus = st
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: s}}
}
