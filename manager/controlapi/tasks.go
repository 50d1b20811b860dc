package controlapi

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

var taskFilters = map[string]bool{"service": true, "node": true, "desired-state": true, "name": true, "id": true}

var desiredStates = []string{"running", "shutdown", "accepted"}

// taskFilter is a ListTasks filter with its references resolved.
type taskFilter struct {
	services map[string]bool // service IDs; nil: any
	nodes    map[string]bool // node IDs; nil: any
	desired  []string
	names    []string
	ids      []string
}

// ListTasks lists tasks matching the filters, sorted by service, slot (or
// node) and creation, with the hostnames of the nodes they are on.
func (s *Server) ListTasks(ctx context.Context, req *shoalpb.ListTasksRequest) (*shoalpb.ListTasksResponse, error) {
	for _, k := range sortedFilterKeys(req.GetFilters()) {
		if !taskFilters[k] {
			return nil, invalid("invalid filter '%s'", k)
		}
		if k == "desired-state" {
			for _, v := range req.Filters[k].GetValues() {
				if !containsFold(desiredStates, v) {
					return nil, invalid("invalid filter 'desired-state=%s': desired-state must be running, shutdown or accepted", v)
				}
			}
		}
	}
	resp := &shoalpb.ListTasksResponse{NodeNames: map[string]string{}}
	var err error
	s.Store.View(func(tx store.ReadTx) {
		var f *taskFilter
		if f, err = resolveTaskFilter(tx, req.GetFilters()); err != nil {
			return
		}
		for _, t := range f.candidates(tx) {
			if !f.match(t) {
				continue
			}
			resp.Tasks = append(resp.Tasks, t)
			if id := t.GetNodeId(); id != "" {
				if _, seen := resp.NodeNames[id]; !seen {
					if n := tx.Node(id); n != nil {
						resp.NodeNames[id] = n.GetDescription().GetHostname()
					}
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	SortTasks(resp.Tasks)
	return resp, nil
}

// resolveTaskFilter turns service and node references into IDs. A
// reference that matches nothing matches no task; one that is ambiguous
// is an error.
func resolveTaskFilter(tx store.ReadTx, filters map[string]*shoalpb.FilterValues) (*taskFilter, error) {
	f := &taskFilter{
		desired: filters["desired-state"].GetValues(),
		names:   filters["name"].GetValues(),
		ids:     filters["id"].GetValues(),
	}
	if refs := filters["service"].GetValues(); len(refs) > 0 {
		f.services = map[string]bool{}
		for _, ref := range refs {
			svc, err := tx.FindService(ref)
			switch {
			case err == nil:
				f.services[svc.Id] = true
			case errors.Is(err, store.ErrNotExist):
				// Tasks may outlive their service for a while.
				f.services[ref] = true
			default:
				return nil, invalid("invalid filter 'service=%s': %v", ref, err)
			}
		}
	}
	if refs := filters["node"].GetValues(); len(refs) > 0 {
		f.nodes = map[string]bool{}
		for _, ref := range refs {
			n, err := tx.FindNode(ref)
			switch {
			case err == nil:
				f.nodes[n.Id] = true
			case errors.Is(err, store.ErrNotExist):
				// A removed node's tasks still name it.
				f.nodes[ref] = true
			default:
				return nil, invalid("invalid filter 'node=%s': %v", ref, err)
			}
		}
	}
	return f, nil
}

// candidates reads the tasks the filter could match, through an index
// when it names services or nodes.
func (f *taskFilter) candidates(tx store.ReadTx) []*shoalpb.Task {
	switch {
	case f.services != nil:
		var out []*shoalpb.Task
		for _, id := range sortedKeys(f.services) {
			out = append(out, tx.TasksByService(id)...)
		}
		return out
	case f.nodes != nil:
		var out []*shoalpb.Task
		for _, id := range sortedKeys(f.nodes) {
			out = append(out, tx.TasksByNode(id)...)
		}
		return out
	}
	return tx.Tasks()
}

func (f *taskFilter) match(t *shoalpb.Task) bool {
	if f.services != nil && !f.services[t.GetServiceId()] {
		return false
	}
	if f.nodes != nil && !f.nodes[t.GetNodeId()] {
		return false
	}
	if len(f.desired) > 0 && !anyOf(f.desired, func(v string) bool { return matchDesired(t, v) }) {
		return false
	}
	if len(f.names) > 0 && !anyOf(f.names, func(v string) bool { return strings.HasPrefix(TaskName(t), v) }) {
		return false
	}
	if len(f.ids) > 0 && !anyOf(f.ids, func(v string) bool { return strings.HasPrefix(t.GetId(), v) }) {
		return false
	}
	return true
}

// matchDesired matches docker's desired-state filter: running is every
// task still wanted (including one waiting out a restart delay), shutdown
// every task no longer wanted, accepted a task desired ACCEPTED.
func matchDesired(t *shoalpb.Task, v string) bool {
	d := t.GetDesiredState()
	switch strings.ToLower(v) {
	case "running":
		return d <= shoalpb.TaskState_TASK_STATE_RUNNING
	case "shutdown":
		return d > shoalpb.TaskState_TASK_STATE_RUNNING
	case "accepted":
		return d == shoalpb.TaskState_TASK_STATE_ACCEPTED
	}
	return false
}

// TaskName is a task's full name: <service>.<slot>.<task ID> for
// replicated modes, <service>.<node ID>.<task ID> for global ones.
func TaskName(t *shoalpb.Task) string {
	return t.GetServiceName() + "." + slotName(t) + "." + t.GetId()
}

func slotName(t *shoalpb.Task) string {
	if t.GetSlot() != 0 {
		return strconv.FormatUint(t.GetSlot(), 10)
	}
	return t.GetNodeId()
}

// SortTasks orders tasks by service name and ID, slot, node and creation.
func SortTasks(tasks []*shoalpb.Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		switch {
		case a.GetServiceName() != b.GetServiceName():
			return a.GetServiceName() < b.GetServiceName()
		case a.GetServiceId() != b.GetServiceId():
			return a.GetServiceId() < b.GetServiceId()
		case a.GetSlot() != b.GetSlot():
			return a.GetSlot() < b.GetSlot()
		case a.GetSlot() == 0 && a.GetNodeId() != b.GetNodeId():
			return a.GetNodeId() < b.GetNodeId()
		case a.GetMeta().GetCreatedAt() != b.GetMeta().GetCreatedAt():
			return a.GetMeta().GetCreatedAt() < b.GetMeta().GetCreatedAt()
		}
		return a.GetId() < b.GetId()
	})
}

func anyOf(values []string, pred func(string) bool) bool {
	for _, v := range values {
		if pred(v) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
