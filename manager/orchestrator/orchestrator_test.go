package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestBatchSplitsUnderSizeCap(t *testing.T) {
	const limit = 16 << 10
	b := NewBatch(limit, 0)
	var committed []int
	for i := range 1000 {
		task := &shoalpb.Task{Id: fmt.Sprintf("t%04d", i), ServiceId: "svc", Slot: uint64(i + 1),
			Spec: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "busybox", Env: []string{"A=0123456789"}}}}
		b.CreateTask(task, func() { committed = append(committed, i) })
	}
	if b.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", b.Len())
	}
	s := store.New()
	p := &sizeCheckingProposer{inner: &store.LocalProposer{Store: s}, limit: limit}
	if err := b.Commit(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if p.commands < 2 || p.commands > 20 {
		t.Fatalf("%d commands for 1000 tasks under %d bytes each", p.commands, limit)
	}
	if len(committed) != 1000 || committed[0] != 0 || committed[999] != 999 {
		t.Fatalf("callbacks ran for %d tasks", len(committed))
	}
	s.View(func(tx store.ReadTx) {
		if n := len(tx.Tasks()); n != 1000 {
			t.Fatalf("%d tasks stored, want 1000", n)
		}
	})
	if b.Len() != 0 {
		t.Fatal("batch not empty after Commit")
	}
}

type sizeCheckingProposer struct {
	inner    store.Proposer
	limit    int
	commands int
}

func (p *sizeCheckingProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	if n := proto.Size(cmd); n > p.limit {
		return 0, fmt.Errorf("command of %d bytes over the %d byte cap", n, p.limit)
	}
	p.commands++
	return p.inner.Propose(ctx, cmd)
}

func TestBatchCapsActions(t *testing.T) {
	b := NewBatch(0, 3)
	for i := range 7 {
		b.SetDesiredState(fmt.Sprint(i), shoalpb.TaskState_TASK_STATE_SHUTDOWN, time.Unix(0, 0), nil)
	}
	// A group stays whole, even past the cap.
	b.Add(nil, DesiredStateAction("g1", shoalpb.TaskState_TASK_STATE_SHUTDOWN, time.Unix(0, 0)),
		DesiredStateAction("g2", shoalpb.TaskState_TASK_STATE_SHUTDOWN, time.Unix(0, 0)),
		DesiredStateAction("g3", shoalpb.TaskState_TASK_STATE_SHUTDOWN, time.Unix(0, 0)),
		DesiredStateAction("g4", shoalpb.TaskState_TASK_STATE_SHUTDOWN, time.Unix(0, 0)))
	var sizes []int
	for _, c := range b.cmds {
		sizes = append(sizes, len(c.cmd.Actions))
	}
	if fmt.Sprint(sizes) != "[3 3 1 4]" {
		t.Fatalf("command sizes %v, want [3 3 1 4]", sizes)
	}
}

func TestBatchFailedCommandSkipsItsCallbacks(t *testing.T) {
	s := store.New()
	p := &store.LocalProposer{Store: s}
	b := NewBatch(0, 0)
	ran := false
	// Removing a task that does not exist fails the command.
	b.RemoveTask(&shoalpb.Task{Id: "missing"}, func() { ran = true })
	err := b.Commit(context.Background(), p)
	if !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if ran {
		t.Fatal("callback of a failed command ran")
	}
}

func TestNewTask(t *testing.T) {
	now := time.Unix(100, 5)
	svc := &shoalpb.Service{Id: "s", SpecVersion: 3, JobStatus: &shoalpb.JobStatus{JobIteration: 4}, Spec: &shoalpb.ServiceSpec{
		Name: "web", Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "img"}},
		Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}},
	}}
	task := NewTask(svc, 0, "n1", "id1", now)
	want := &shoalpb.Task{
		Id: "id1", ServiceId: "s", ServiceName: "web", NodeId: "n1", SpecVersion: 3, JobIteration: 4,
		Meta:         &shoalpb.Meta{CreatedAt: now.UnixNano(), UpdatedAt: now.UnixNano()},
		Spec:         svc.Spec.Task,
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
		Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Timestamp: now.UnixNano(), Message: "pending"},
	}
	if !proto.Equal(task, want) {
		t.Fatalf("NewTask = %v\nwant %v", task, want)
	}
	if task.Spec == svc.Spec.Task {
		t.Fatal("the task shares the service's spec instead of a copy")
	}
	svc.Spec.Mode = &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}}
	if got := NewTask(svc, 2, "", "id2", now); got.JobIteration != 0 || got.Slot != 2 {
		t.Fatalf("replicated task: slot %d, job iteration %d", got.Slot, got.JobIteration)
	}
}

func TestJobCounts(t *testing.T) {
	for _, tc := range []struct{ mc, tc, wantMC, wantTC uint64 }{
		{0, 0, 1, 1}, {0, 4, 4, 4}, {3, 0, 3, 3}, {2, 5, 2, 5},
	} {
		mc, total := JobCounts(&shoalpb.ReplicatedJob{MaxConcurrent: tc.mc, TotalCompletions: tc.tc})
		if mc != tc.wantMC || total != tc.wantTC {
			t.Errorf("JobCounts(%d, %d) = %d, %d; want %d, %d", tc.mc, tc.tc, mc, total, tc.wantMC, tc.wantTC)
		}
	}
}

func TestBetter(t *testing.T) {
	mk := func(id string, spec uint64, state, desired shoalpb.TaskState, at int64) *shoalpb.Task {
		return &shoalpb.Task{Id: id, SpecVersion: spec, DesiredState: desired, Meta: &shoalpb.Meta{CreatedAt: at}, Status: &shoalpb.TaskStatus{State: state}}
	}
	run, pend := shoalpb.TaskState_TASK_STATE_RUNNING, shoalpb.TaskState_TASK_STATE_PENDING
	ready := shoalpb.TaskState_TASK_STATE_READY
	for _, tc := range []struct {
		name string
		a, b *shoalpb.Task
		keep string
	}{
		{"newer spec", mk("a", 1, run, run, 1), mk("b", 2, pend, run, 2), "b"},
		{"further along", mk("a", 1, pend, run, 1), mk("b", 1, run, run, 2), "b"},
		{"wanted running", mk("a", 1, pend, ready, 1), mk("b", 1, pend, run, 2), "b"},
		{"older", mk("a", 1, run, run, 1), mk("b", 1, run, run, 2), "a"},
	} {
		for _, order := range [][2]*shoalpb.Task{{tc.a, tc.b}, {tc.b, tc.a}} {
			if keep, drop := Better(order[0], order[1]); keep.Id != tc.keep || drop == keep {
				t.Errorf("%s: kept %s, want %s", tc.name, keep.Id, tc.keep)
			}
		}
	}
}

func TestGlobalFit(t *testing.T) {
	zoneA := &shoalpb.TaskSpec{Placement: &shoalpb.Placement{Constraints: []string{"node.labels.zone==a"}}}
	node := func(state shoalpb.NodeState, avail shoalpb.NodeAvailability, zone string) *shoalpb.Node {
		return &shoalpb.Node{Id: "n", Status: &shoalpb.NodeStatus{State: state}, Spec: &shoalpb.NodeSpec{Availability: avail, Labels: map[string]string{"zone": zone}}}
	}
	const (
		ready, down, unknown = shoalpb.NodeState_NODE_STATE_READY, shoalpb.NodeState_NODE_STATE_DOWN, shoalpb.NodeState_NODE_STATE_UNKNOWN
		active, pause, drain = shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE, shoalpb.NodeAvailability_NODE_AVAILABILITY_PAUSE, shoalpb.NodeAvailability_NODE_AVAILABILITY_DRAIN
	)
	for _, tc := range []struct {
		name        string
		n           *shoalpb.Node
		keep, place bool
	}{
		{"ready active matching", node(ready, active, "a"), true, true},
		{"paused", node(ready, pause, "a"), true, false},
		{"unknown state", node(unknown, active, "a"), true, false},
		{"drained", node(ready, drain, "a"), false, false},
		{"down", node(down, active, "a"), false, false},
		{"not matching", node(ready, active, "b"), false, false},
		{"gone", nil, false, false},
	} {
		keep, place := GlobalFit(tc.n, zoneA, MatchConstraints)
		if keep != tc.keep || place != tc.place {
			t.Errorf("%s: keep %v place %v, want %v %v", tc.name, keep, place, tc.keep, tc.place)
		}
	}
	bad := &shoalpb.TaskSpec{Placement: &shoalpb.Placement{Constraints: []string{"node.labels.zone"}}}
	if MatchConstraints(bad, node(ready, active, "a")) {
		t.Error("a spec with an unparsable constraint matched a node")
	}
}

func TestConfigDefaults(t *testing.T) {
	if _, err := (Config{}).WithDefaults(); err == nil {
		t.Fatal("a config with no store was accepted")
	}
	s := store.New()
	c, err := Config{Store: s, Proposer: &store.LocalProposer{Store: s}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Now == nil || c.After == nil || c.NewID == nil || c.NodeFilter == nil || c.Log == nil ||
		c.BatchDelay != DefaultBatchDelay || c.MaxCommandBytes != MaxCommandBytes {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if a, b := c.NewID(), c.NewID(); len(a) != 25 || a == b {
		t.Fatalf("NewID gave %q and %q", a, b)
	}
}

func TestEndpointNeedsNewTasks(t *testing.T) {
	port := func(mode shoalpb.PortConfig_PublishMode, published uint32) *shoalpb.PortConfig {
		return &shoalpb.PortConfig{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, TargetPort: 80, PublishedPort: published, PublishMode: mode}
	}
	host, ingress := shoalpb.PortConfig_PUBLISH_MODE_HOST, shoalpb.PortConfig_PUBLISH_MODE_INGRESS
	ep := func(mode shoalpb.EndpointSpec_Mode, ports ...*shoalpb.PortConfig) *shoalpb.EndpointSpec {
		return &shoalpb.EndpointSpec{Mode: mode, Ports: ports}
	}
	vip, dnsrr := shoalpb.EndpointSpec_MODE_VIP, shoalpb.EndpointSpec_MODE_DNSRR
	for _, c := range []struct {
		name        string
		was, now    *shoalpb.EndpointSpec
		hadEndpoint bool
		want        bool
	}{
		{"nothing", nil, nil, false, false},
		{"mesh port added", nil, ep(vip, port(ingress, 8080)), true, false},
		{"mesh port changed", ep(vip, port(ingress, 8080)), ep(vip, port(ingress, 8081)), true, false},
		{"host port added", nil, ep(vip, port(host, 8080)), false, true},
		{"host port changed", ep(vip, port(host, 8080)), ep(vip, port(host, 8081)), true, true},
		{"host ports reordered", ep(vip, port(host, 1), port(host, 2)), ep(vip, port(host, 2), port(host, 1)), true, false},
		{"host port became mesh", ep(vip, port(host, 8080)), ep(vip, port(ingress, 8080)), true, true},
		{"mode changed", ep(vip), ep(dnsrr), true, true},
		// A task made without an endpoint (no networks, no ports) gets
		// none however the mode is set: no new task would have one.
		{"mode set on a task without endpoint", nil, ep(dnsrr), false, false},
	} {
		if got := EndpointNeedsNewTasks(c.was, c.now, c.hadEndpoint); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
