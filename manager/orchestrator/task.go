package orchestrator

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Mode is how a service turns into tasks.
type Mode int

// Service modes. A service with no mode set is left alone by every loop;
// the control API gives each service one.
const (
	ModeNone Mode = iota
	ModeReplicated
	ModeGlobal
	ModeReplicatedJob
	ModeGlobalJob
)

// ModeOf returns the mode of svc.
func ModeOf(svc *shoalpb.Service) Mode {
	switch svc.GetSpec().GetMode().(type) {
	case *shoalpb.ServiceSpec_Replicated:
		return ModeReplicated
	case *shoalpb.ServiceSpec_Global:
		return ModeGlobal
	case *shoalpb.ServiceSpec_ReplicatedJob:
		return ModeReplicatedJob
	case *shoalpb.ServiceSpec_GlobalJob:
		return ModeGlobalJob
	}
	return ModeNone
}

// IsJob reports whether m runs tasks to completion.
func (m Mode) IsJob() bool { return m == ModeReplicatedJob || m == ModeGlobalJob }

// JobCounts returns how many tasks of a replicated job may run at once and
// how many must complete. As with docker, each defaults to the other, and
// both to 1.
func JobCounts(j *shoalpb.ReplicatedJob) (maxConcurrent, totalCompletions uint64) {
	mc, tc := j.GetMaxConcurrent(), j.GetTotalCompletions()
	switch {
	case mc == 0 && tc == 0:
		return 1, 1
	case mc == 0:
		mc = tc
	case tc == 0:
		tc = mc
	}
	return mc, tc
}

// JobIteration returns the run of a job service that tasks are made for.
func JobIteration(svc *shoalpb.Service) uint64 { return svc.GetJobStatus().GetJobIteration() }

// NeedsNetworkAllocation reports whether tasks of svc need the network
// allocator before they can be scheduled: the spec joins networks or
// publishes ports.
func NeedsNetworkAllocation(svc *shoalpb.Service) bool {
	return len(svc.GetSpec().GetTask().GetNetworks()) > 0 || len(svc.GetSpec().GetEndpoint().GetPorts()) > 0
}

// NewTask makes a task of svc from its current spec: desired RUNNING,
// observed PENDING, or NEW when the network allocator must give it its
// attachments first (NeedsNetworkAllocation). slot is the replica number
// (replicated modes) and nodeID the node (global modes); the other is zero.
func NewTask(svc *shoalpb.Service, slot uint64, nodeID, id string, now time.Time) *shoalpb.Task {
	spec := svc.GetSpec().GetTask()
	if spec == nil {
		spec = &shoalpb.TaskSpec{}
	} else {
		spec = proto.Clone(spec).(*shoalpb.TaskSpec)
	}
	ts := now.UnixNano()
	t := &shoalpb.Task{
		Id:           id,
		Meta:         &shoalpb.Meta{CreatedAt: ts, UpdatedAt: ts},
		ServiceId:    svc.GetId(),
		ServiceName:  svc.GetSpec().GetName(),
		Slot:         slot,
		NodeId:       nodeID,
		Spec:         spec,
		SpecVersion:  svc.GetSpecVersion(),
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Timestamp: ts, Message: "pending"},
	}
	if NeedsNetworkAllocation(svc) {
		t.Status = &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_NEW, Timestamp: ts, Message: "created"}
	}
	if ModeOf(svc).IsJob() {
		t.JobIteration = JobIteration(svc)
	}
	return t
}

// EndpointNeedsNewTasks reports whether a task made under the endpoint
// spec was must be replaced now that the service's is now: when the ports
// published in host mode changed (they are bound on the task's node), or,
// for a task that has an endpoint (hadEndpoint), when the endpoint mode
// changed (a VIP appears or goes). Ports published on the routing mesh
// change without new tasks.
func EndpointNeedsNewTasks(was, now *shoalpb.EndpointSpec, hadEndpoint bool) bool {
	if hadEndpoint && was.GetMode() != now.GetMode() {
		return true
	}
	return !slices.Equal(hostPortKeys(was), hostPortKeys(now))
}

// hostPortKeys lists the ports spec publishes in host mode, sorted.
func hostPortKeys(spec *shoalpb.EndpointSpec) []string {
	var out []string
	for _, p := range spec.GetPorts() {
		if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_HOST {
			out = append(out, fmt.Sprintf("%s/%d/%d/%s", p.GetProtocol(), p.GetPublishedPort(), p.GetTargetPort(), p.GetName()))
		}
	}
	slices.Sort(out)
	return out
}

// IsRunnable reports whether the managers still want t to run: its desired
// state is at most RUNNING (READY tasks wait for a restart delay).
func IsRunnable(t *shoalpb.Task) bool {
	return t.GetDesiredState() <= shoalpb.TaskState_TASK_STATE_RUNNING
}

// HasStopped reports whether t's observed state is past RUNNING: it
// completed, failed, was shut down, rejected or orphaned.
func HasStopped(t *shoalpb.Task) bool {
	return t.GetStatus().GetState() > shoalpb.TaskState_TASK_STATE_RUNNING
}

// HasFailed reports whether t stopped in a way that counts as a failure
// (a non-zero exit, a refusal, or its node lost for good).
func HasFailed(t *shoalpb.Task) bool {
	switch t.GetStatus().GetState() {
	case shoalpb.TaskState_TASK_STATE_FAILED, shoalpb.TaskState_TASK_STATE_REJECTED, shoalpb.TaskState_TASK_STATE_ORPHANED:
		return true
	}
	return false
}

// EndedByItself reports whether t stopped on its own account (it exited,
// failed or was refused) rather than because it was asked to: a worker
// reports SHUTDOWN only for a task told to stop.
func EndedByItself(t *shoalpb.Task) bool {
	return t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_COMPLETE || HasFailed(t)
}

// IsCompleted reports whether t ran to a successful end.
func IsCompleted(t *shoalpb.Task) bool {
	return t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_COMPLETE
}

// CompareAge orders tasks oldest first: by creation time, then ID.
func CompareAge(a, b *shoalpb.Task) int {
	if c := cmp.Compare(a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}

// SortByAge sorts tasks oldest first.
func SortByAge(tasks []*shoalpb.Task) { slices.SortFunc(tasks, CompareAge) }

// GroupBySlot groups tasks by slot, each group oldest first. Tasks with
// slot 0 are left out.
func GroupBySlot(tasks []*shoalpb.Task) map[uint64][]*shoalpb.Task {
	out := map[uint64][]*shoalpb.Task{}
	for _, t := range tasks {
		if t.GetSlot() != 0 {
			out[t.Slot] = append(out[t.Slot], t)
		}
	}
	for _, g := range out {
		SortByAge(g)
	}
	return out
}

// GroupByNode groups tasks by node, each group oldest first. Tasks with
// no node are left out.
func GroupByNode(tasks []*shoalpb.Task) map[string][]*shoalpb.Task {
	out := map[string][]*shoalpb.Task{}
	for _, t := range tasks {
		if t.GetNodeId() != "" {
			out[t.NodeId] = append(out[t.NodeId], t)
		}
	}
	for _, g := range out {
		SortByAge(g)
	}
	return out
}

// SortedKeys returns m's keys in ascending order.
func SortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Better returns which of two runnable tasks filling the same slot to keep
// (and which to stop): the one of the newer spec, then the one further
// along, then the one wanted RUNNING over one waiting in READY, then the
// older one.
func Better(a, b *shoalpb.Task) (keep, drop *shoalpb.Task) {
	if a.GetSpecVersion() != b.GetSpecVersion() {
		if a.GetSpecVersion() > b.GetSpecVersion() {
			return a, b
		}
		return b, a
	}
	if sa, sb := a.GetStatus().GetState(), b.GetStatus().GetState(); sa != sb {
		if sa > sb {
			return a, b
		}
		return b, a
	}
	if a.GetDesiredState() != b.GetDesiredState() {
		if a.GetDesiredState() > b.GetDesiredState() {
			return a, b
		}
		return b, a
	}
	if CompareAge(a, b) <= 0 {
		return a, b
	}
	return b, a
}
