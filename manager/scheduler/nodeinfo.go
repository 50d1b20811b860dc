package scheduler

import (
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// NodeInfo is the scheduler's view of one node: the node and what its
// unfinished tasks already hold. The caller builds it, usually with
// NewNodeInfo.
type NodeInfo struct {
	Node *shoalpb.Node
	// ActiveTasksByService counts, per service ID, the node's active tasks
	// (see TaskActive).
	ActiveTasksByService map[string]int
	// ActiveTasks is the total number of the node's active tasks.
	ActiveTasks int
	// AvailableResources is what the node reports minus the reservations of
	// its active tasks. It may be negative when the node is overcommitted.
	AvailableResources *shoalpb.Resources
	// UsedHostPorts holds the host-mode ports its tasks publish, as
	// "tcp/8080". Task specs publish no ports yet, so it stays empty.
	UsedHostPorts map[string]bool
}

// TaskActive reports whether t still holds its place on its node: it is
// meant to run (desired state RUNNING or earlier) and has not finished
// (observed state before COMPLETE).
func TaskActive(t *shoalpb.Task) bool {
	return t.GetDesiredState() <= shoalpb.TaskState_TASK_STATE_RUNNING &&
		t.GetStatus().GetState() < shoalpb.TaskState_TASK_STATE_COMPLETE
}

// NewNodeInfo builds the NodeInfo of n from tasks, which may hold tasks of
// any node: only the active ones whose NodeId is n's ID are counted.
func NewNodeInfo(n *shoalpb.Node, tasks []*shoalpb.Task) NodeInfo {
	res := n.GetDescription().GetResources()
	ni := NodeInfo{
		Node:                 n,
		ActiveTasksByService: make(map[string]int),
		AvailableResources:   &shoalpb.Resources{NanoCpus: res.GetNanoCpus(), MemoryBytes: res.GetMemoryBytes()},
		UsedHostPorts:        make(map[string]bool),
	}
	id := n.GetId()
	if id == "" {
		return ni
	}
	for _, t := range tasks {
		if t.GetNodeId() != id || !TaskActive(t) {
			continue
		}
		ni.add(t.GetServiceId(), reservationsOf(t), hostPortsOf(t))
	}
	return ni
}

// add accounts for one more active task on the node.
func (ni *NodeInfo) add(serviceID string, r reservation, ports []string) {
	ni.ActiveTasksByService[serviceID]++
	ni.ActiveTasks++
	ni.AvailableResources.NanoCpus -= r.nanoCPUs
	ni.AvailableResources.MemoryBytes -= r.memoryBytes
	for _, p := range ports {
		ni.UsedHostPorts[p] = true
	}
}

// clone returns a copy that shares nothing mutable with ni, with every map
// and the resources allocated, so the scheduler can update it freely.
func (ni *NodeInfo) clone() NodeInfo {
	c := NodeInfo{
		Node:                 ni.Node,
		ActiveTasksByService: make(map[string]int, len(ni.ActiveTasksByService)),
		ActiveTasks:          ni.ActiveTasks,
		AvailableResources: &shoalpb.Resources{
			NanoCpus:    ni.AvailableResources.GetNanoCpus(),
			MemoryBytes: ni.AvailableResources.GetMemoryBytes(),
		},
		UsedHostPorts: make(map[string]bool, len(ni.UsedHostPorts)),
	}
	for k, v := range ni.ActiveTasksByService {
		c.ActiveTasksByService[k] = v
	}
	for k, v := range ni.UsedHostPorts {
		c.UsedHostPorts[k] = v
	}
	return c
}

// ready reports whether the node takes new tasks at all.
func (ni *NodeInfo) ready() bool {
	n := ni.Node
	return n != nil && n.GetId() != "" &&
		n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_READY &&
		n.GetSpec().GetAvailability() == shoalpb.NodeAvailability_NODE_AVAILABILITY_ACTIVE
}

// reservation is what a task reserves on its node.
type reservation struct {
	nanoCPUs    int64
	memoryBytes int64
}

func reservationsOf(t *shoalpb.Task) reservation {
	r := t.GetSpec().GetResources().GetReservations()
	return reservation{nanoCPUs: r.GetNanoCpus(), memoryBytes: r.GetMemoryBytes()}
}

// hostPortsOf returns the host-mode ports t publishes, as "tcp/8080". Task
// specs cannot publish ports yet, so it returns none; the host-port filter
// and the bookkeeping in NodeInfo are ready for when they can.
func hostPortsOf(*shoalpb.Task) []string {
	return nil
}
