package allocator

import (
	"cmp"
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Allocator gives services their endpoints and NEW tasks their network
// attachments while this manager leads.
type Allocator struct {
	cfg orchestrator.Config
	st  *state

	// What Observe noted since the last pass.
	full     bool                // rebuild the state from the store
	networks bool                // a network was created or removed
	services map[string]struct{} // services to plan (or whose removal frees)
	tasks    map[string]struct{} // NEW tasks to allocate
	released map[string]struct{} // tasks that may have let go of addresses
	nodes    map[string]struct{} // nodes to give (or free) an ingress address
	allNodes bool                // the ingress network came or went
	retry    bool                // something was freed: retry what waits

	// Work carried between passes (rebuilt with the state).
	// waitTasks are NEW tasks that could not be allocated; their status
	// says why.
	waitTasks map[string]struct{}
	// waitServices are services whose endpoint could not be allocated,
	// with why.
	waitServices map[string]string
	// deferred are NEW tasks waiting for their service's endpoint to be
	// written, by service.
	deferred map[string]map[string]struct{}
	// waitNodes are nodes that could not be given an ingress address.
	waitNodes map[string]struct{}
}

// New returns an allocator for the store and proposer in cfg.
func New(cfg orchestrator.Config) (*Allocator, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Allocator{
		cfg:      cfg,
		full:     true,
		services: map[string]struct{}{},
		tasks:    map[string]struct{}{},
		released: map[string]struct{}{},
		nodes:    map[string]struct{}{},
	}, nil
}

// Run allocates until ctx ends, then returns nil.
func (a *Allocator) Run(ctx context.Context) error {
	orchestrator.Run(ctx, a.cfg, "allocator", (*loop)(a))
	return nil
}

type loop Allocator

func (l *loop) Observe(ev store.Event) {
	switch obj := ev.Object.(type) {
	case *shoalpb.Task:
		switch {
		case ev.Kind == store.EventRemove:
			if len(obj.GetNetworks()) > 0 {
				l.released[obj.Id] = struct{}{}
			}
			delete(l.tasks, obj.Id)
		case obj.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_NEW:
			l.tasks[obj.Id] = struct{}{}
		case len(obj.GetNetworks()) > 0 && !HoldsAddresses(obj):
			if old, _ := ev.Old.(*shoalpb.Task); old == nil || HoldsAddresses(old) {
				l.released[obj.Id] = struct{}{}
			}
		}
	case *shoalpb.Service:
		l.services[obj.Id] = struct{}{}
	case *shoalpb.Network:
		l.networks = true
		if ev.Kind == store.EventCreate {
			l.retry = true
		}
		if obj.GetSpec().GetIngress() {
			l.allNodes = true
		}
	case *shoalpb.Node:
		// Heartbeats update nodes all the time; only a new or removed node,
		// or attachments changed by someone else, matter.
		old, _ := ev.Old.(*shoalpb.Node)
		if ev.Kind != store.EventUpdate || !slices.EqualFunc(old.GetAttachments(), obj.GetAttachments(), func(a, b *shoalpb.NodeAttachment) bool { return proto.Equal(a, b) }) {
			l.nodes[obj.Id] = struct{}{}
		}
	}
}

func (l *loop) Pending() bool {
	return l.full || l.networks || l.retry || l.allNodes || len(l.services) > 0 || len(l.tasks) > 0 || len(l.released) > 0 || len(l.nodes) > 0
}

func (l *loop) Wake() time.Time { return time.Time{} }

func (l *loop) Reconcile(ctx context.Context, full bool) error {
	a := (*Allocator)(l)
	b := a.cfg.NewBatch()
	now := a.cfg.Now()
	a.cfg.Store.View(func(tx store.ReadTx) {
		p := &pass{a: a, tx: tx, b: b, now: now, planned: map[string]*servicePlan{}}
		p.run(full || a.full)
	})
	a.full, a.networks, a.retry, a.allNodes = false, false, false, false
	clear(a.services)
	clear(a.tasks)
	clear(a.released)
	clear(a.nodes)
	if n := b.Len(); n > 0 {
		a.cfg.Log.Debug("allocator writes", "actions", n)
	}
	if err := b.Commit(ctx, a.cfg.Proposer); err != nil {
		// What was taken for the writes that failed is only in memory
		// now: start again from the store.
		a.full = true
		return err
	}
	return nil
}

// pass is one allocation pass over a store view.
type pass struct {
	a       *Allocator
	tx      store.ReadTx
	b       *orchestrator.Batch
	now     time.Time
	planned map[string]*servicePlan
}

// servicePlan is the outcome of planning one service in a pass.
type servicePlan struct {
	svc     *shoalpb.Service
	err     string // the endpoint cannot be allocated
	writing bool   // its endpoint is being written: its tasks wait
}

func (p *pass) run(full bool) {
	a := p.a
	if full {
		p.rebuild()
	} else if a.networks {
		p.syncNetworks()
	}
	for _, id := range sortedIDs(a.released) {
		if t := p.tx.Task(id); t == nil || !HoldsAddresses(t) {
			if a.st.releaseTask(id) {
				a.retry = true
			}
		}
	}
	p.allocateNodes()
	if a.retry {
		for id := range a.waitNodes {
			a.nodes[id] = struct{}{}
		}
		p.allocateNodes()
		for id := range a.waitTasks {
			a.tasks[id] = struct{}{}
		}
		for id := range a.waitServices {
			a.services[id] = struct{}{}
		}
	}
	// Tasks need their service planned first; read them to know which.
	for id := range a.tasks {
		if t := p.tx.Task(id); t != nil && t.GetServiceId() != "" {
			a.services[t.ServiceId] = struct{}{}
		}
	}
	for _, id := range sortedIDs(a.services) {
		p.planService(id)
	}
	p.allocateTasks()
}

// rebuild makes the state anew from the store and queues everything.
func (p *pass) rebuild() {
	a := p.a
	a.st = newState(a.cfg.Log.With("component", "allocator"))
	a.waitTasks = map[string]struct{}{}
	a.waitServices = map[string]string{}
	a.deferred = map[string]map[string]struct{}{}
	a.waitNodes = map[string]struct{}{}
	for _, n := range p.tx.Networks() {
		a.st.addNetwork(n)
	}
	for _, n := range p.tx.Nodes() {
		a.st.holdNode(n)
		a.nodes[n.Id] = struct{}{}
	}
	services := p.tx.Services()
	orderServices(services)
	for _, svc := range services {
		a.st.holdEndpoint(svc)
		a.services[svc.Id] = struct{}{}
	}
	tasks := p.tx.Tasks()
	orchestrator.SortByAge(tasks)
	for _, t := range tasks {
		switch {
		case HoldsAddresses(t):
			a.st.holdTask(t)
		case t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_NEW:
			a.tasks[t.Id] = struct{}{}
		}
	}
}

// allocateNodes gives the queued nodes (every node, when the ingress
// network came or went) their address on the ingress network, or frees
// the addresses of removed nodes.
func (p *pass) allocateNodes() {
	a := p.a
	if a.allNodes {
		a.allNodes = false
		for _, n := range p.tx.Nodes() {
			a.nodes[n.Id] = struct{}{}
		}
	}
	for _, id := range sortedIDs(a.nodes) {
		delete(a.nodes, id)
		n := p.tx.Node(id)
		if n == nil {
			if a.st.releaseNode(id) {
				a.retry = true
			}
			delete(a.waitNodes, id)
			continue
		}
		atts, err := a.st.nodeAttachments(id)
		if err != nil {
			if _, waiting := a.waitNodes[id]; !waiting {
				a.cfg.Log.Warn("node has no address on the ingress network; retrying when one is freed", "node", id, "err", err)
			}
			a.waitNodes[id] = struct{}{}
			continue
		}
		delete(a.waitNodes, id)
		if slices.EqualFunc(atts, n.GetAttachments(), func(x, y *shoalpb.NodeAttachment) bool { return proto.Equal(x, y) }) {
			continue
		}
		p.b.Add(nil, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeAttachmentsPatch{NodeAttachmentsPatch: &shoalpb.NodeAttachmentsPatch{
			NodeId: id, Attachments: atts, UpdatedAt: p.now.UnixNano(),
		}}})
	}
}

// orderServices sorts services oldest first, so that when the store holds
// conflicting allocations the older service keeps them.
func orderServices(svcs []*shoalpb.Service) {
	slices.SortFunc(svcs, func(a, b *shoalpb.Service) int {
		if c := cmp.Compare(a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetId(), b.GetId())
	})
}

// syncNetworks adds pools for new networks and drops removed ones.
func (p *pass) syncNetworks() {
	st := p.a.st
	seen := map[string]bool{}
	for _, n := range p.tx.Networks() {
		seen[n.Id] = true
		if st.networks[n.Id] == nil {
			st.addNetwork(n)
		}
	}
	for id := range st.networks {
		if !seen[id] {
			delete(st.networks, id)
		}
	}
}

// planService brings one service's endpoint in line with its spec.
func (p *pass) planService(id string) {
	a := p.a
	svc := p.tx.Service(id)
	if svc == nil {
		if a.st.releaseService(id) {
			a.retry = true
		}
		delete(a.waitServices, id)
		delete(a.deferred, id)
		return
	}
	sp := &servicePlan{svc: svc}
	p.planned[id] = sp
	_, wasWaiting := a.waitServices[id]
	plan, err := a.st.planEndpoint(svc, p.serviceName)
	if err != nil {
		sp.err = err.Error()
		a.waitServices[id] = sp.err
		p.queueNewTasks(id)
		return
	}
	delete(a.waitServices, id)
	if !proto.Equal(plan.endpoint, svc.GetEndpoint()) {
		sp.writing = true
		upd := proto.Clone(svc).(*shoalpb.Service)
		upd.Endpoint = plan.endpoint
		upd.Meta = &shoalpb.Meta{Version: svc.GetMeta().GetVersion(), CreatedAt: svc.GetMeta().GetCreatedAt(), UpdatedAt: p.now.UnixNano()}
		p.b.Add(func() {
			if a.st.commit(id, plan) {
				a.retry = true
			}
		}, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: upd}})
		return
	}
	if a.st.commit(id, plan) {
		a.retry = true
	}
	if wasWaiting {
		p.queueNewTasks(id)
	}
	for tid := range a.deferred[id] {
		a.tasks[tid] = struct{}{}
	}
	delete(a.deferred, id)
}

func (p *pass) serviceName(id string) string {
	if svc := p.tx.Service(id); svc != nil {
		return svc.GetSpec().GetName()
	}
	return id
}

// queueNewTasks queues the NEW tasks of a service.
func (p *pass) queueNewTasks(serviceID string) {
	for _, t := range p.tx.TasksByService(serviceID) {
		if t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_NEW {
			p.a.tasks[t.Id] = struct{}{}
		}
	}
}

// allocateTasks gives the queued NEW tasks their attachments, oldest
// first, or records why they cannot have them.
func (p *pass) allocateTasks() {
	a := p.a
	var tasks []*shoalpb.Task
	for id := range a.tasks {
		t := p.tx.Task(id)
		if t == nil || t.GetStatus().GetState() != shoalpb.TaskState_TASK_STATE_NEW || !orchestrator.IsRunnable(t) {
			// Allocated, gone, or no longer wanted (the task reaper
			// deletes tasks that never left NEW).
			delete(a.waitTasks, id)
			continue
		}
		tasks = append(tasks, t)
	}
	orchestrator.SortByAge(tasks)
	for _, t := range tasks {
		sp := p.planned[t.GetServiceId()]
		if sp == nil {
			// The service is gone: its tasks are shut down and deleted.
			delete(a.waitTasks, t.Id)
			continue
		}
		if sp.err != "" {
			p.fail(t, sp.err)
			continue
		}
		if sp.writing {
			if a.deferred[sp.svc.Id] == nil {
				a.deferred[sp.svc.Id] = map[string]struct{}{}
			}
			a.deferred[sp.svc.Id][t.Id] = struct{}{}
			delete(a.waitTasks, t.Id)
			continue
		}
		atts, hs, err := a.st.allocateTask(t, sp.svc)
		if err != nil {
			p.fail(t, err.Error())
			continue
		}
		delete(a.waitTasks, t.Id)
		if len(hs) > 0 {
			a.st.tasks[t.Id] = hs
		}
		var ep *shoalpb.Endpoint
		if sp.svc.GetEndpoint() != nil {
			ep = proto.Clone(sp.svc.GetEndpoint()).(*shoalpb.Endpoint)
		}
		p.b.Add(nil, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskAllocation{TaskAllocation: &shoalpb.TaskAllocation{
			TaskId:   t.Id,
			Networks: atts,
			Endpoint: ep,
			Status:   &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_PENDING, Timestamp: p.now.UnixNano(), Message: "pending"},
		}}})
	}
}

// fail leaves t NEW, showing why in its status (written only when the
// reason changed), and retries it when something is freed.
func (p *pass) fail(t *shoalpb.Task, reason string) {
	p.a.waitTasks[t.Id] = struct{}{}
	if t.GetStatus().GetErr() == reason {
		return
	}
	st := proto.Clone(t.GetStatus()).(*shoalpb.TaskStatus)
	if st == nil {
		st = &shoalpb.TaskStatus{}
	}
	st.State = shoalpb.TaskState_TASK_STATE_NEW
	st.Err = reason
	p.b.Add(nil, orchestrator.StatusAction(t.Id, st))
}
