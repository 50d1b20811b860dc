package controlapi

import (
	"context"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/raftstore"
)

var nodeFilters = map[string]bool{"id": true, "label": true, "node.label": true, "membership": true, "name": true, "role": true}

// ListNodes lists nodes matching the request's filters.
func (s *Server) ListNodes(ctx context.Context, req *shoalpb.ListNodesRequest) (*shoalpb.ListNodesResponse, error) {
	keys := make([]string, 0, len(req.Filters))
	for k := range req.Filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !nodeFilters[k] {
			return nil, invalid("invalid filter '%s'", k)
		}
		if k == "role" || k == "membership" {
			for _, v := range req.Filters[k].Values {
				if k == "role" && v != "manager" && v != "worker" {
					return nil, invalid("invalid filter 'role=%s': role must be manager or worker", v)
				}
				if k == "membership" && v != "accepted" && v != "pending" {
					return nil, invalid("invalid filter 'membership=%s': membership must be accepted or pending", v)
				}
			}
		}
	}
	var nodes []*shoalpb.Node
	s.Store.View(func(tx store.ReadTx) { nodes = tx.Nodes() })
	ms := s.managerStatuses()
	out := make([]*shoalpb.Node, 0, len(nodes))
	for _, n := range nodes {
		if matchNode(n, req.Filters) {
			out = append(out, s.annotate(n, ms))
		}
	}
	store.SortNodes(out)
	return &shoalpb.ListNodesResponse{Nodes: out}, nil
}

func matchNode(n *shoalpb.Node, filters map[string]*shoalpb.FilterValues) bool {
	for k, fv := range filters {
		if len(fv.GetValues()) == 0 {
			continue
		}
		ok := false
		for _, v := range fv.Values {
			switch k {
			case "id":
				ok = strings.HasPrefix(n.Id, v)
			case "name":
				ok = strings.Contains(n.GetDescription().GetHostname(), v)
			case "role":
				ok = (v == "manager") == (n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER)
			case "membership":
				ok = v == "accepted"
			case "label":
				ok = matchLabel(n.GetDescription().GetEngineLabels(), v)
			case "node.label":
				ok = matchLabel(n.GetSpec().GetLabels(), v)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func matchLabel(labels map[string]string, f string) bool {
	k, v, hasValue := strings.Cut(f, "=")
	got, ok := labels[k]
	return ok && (!hasValue || got == v)
}

// managerStatuses computes every Raft voter's manager status now.
func (s *Server) managerStatuses() map[string]*shoalpb.ManagerStatus {
	servers, err := s.Raft.Servers()
	if err != nil {
		return nil
	}
	leaderID, _ := s.Raft.Leader()
	out := make(map[string]*shoalpb.ManagerStatus, len(servers))
	for _, srv := range servers {
		if !srv.Voter {
			continue
		}
		ms := &shoalpb.ManagerStatus{Addr: srv.Addr, Leader: srv.ID == leaderID, Reachability: shoalpb.Reachability_REACHABILITY_UNREACHABLE}
		if ms.Leader || s.Gossip.Alive(srv.ID) {
			ms.Reachability = shoalpb.Reachability_REACHABILITY_REACHABLE
		}
		out[srv.ID] = ms
	}
	return out
}

func (s *Server) annotate(n *shoalpb.Node, ms map[string]*shoalpb.ManagerStatus) *shoalpb.Node {
	c := proto.Clone(n).(*shoalpb.Node)
	c.ManagerStatus = ms[n.Id]
	return c
}

func (s *Server) findNode(ref string) (*shoalpb.Node, error) {
	var n *shoalpb.Node
	var err error
	s.Store.View(func(tx store.ReadTx) { n, err = tx.FindNode(ref) })
	if err != nil {
		return nil, storeError(err)
	}
	return n, nil
}

// GetNode returns one node.
func (s *Server) GetNode(ctx context.Context, req *shoalpb.GetNodeRequest) (*shoalpb.GetNodeResponse, error) {
	n, err := s.findNode(req.NodeRef)
	if err != nil {
		return nil, err
	}
	return &shoalpb.GetNodeResponse{Node: s.annotate(n, s.managerStatuses())}, nil
}

// UpdateNode changes a node's availability, desired role or labels.
func (s *Server) UpdateNode(ctx context.Context, req *shoalpb.UpdateNodeRequest) (*shoalpb.UpdateNodeResponse, error) {
	n, err := s.findNode(req.NodeRef)
	if err != nil {
		return nil, err
	}
	if req.SetAvailability {
		if _, ok := shoalpb.NodeAvailability_name[int32(req.Availability)]; !ok {
			return nil, invalid("invalid availability %d", req.Availability)
		}
	}
	for k := range req.LabelsAdd {
		if k == "" {
			return nil, invalid("invalid label: empty key")
		}
	}
	if req.SetRole {
		if _, ok := shoalpb.NodeRole_name[int32(req.Role)]; !ok {
			return nil, invalid("invalid role %d", req.Role)
		}
		if req.Role == shoalpb.NodeRole_NODE_ROLE_WORKER && n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER {
			if err := s.checkDemote(n); err != nil {
				return nil, err
			}
		}
	}
	patch := &shoalpb.NodeSpecPatch{
		NodeId:          n.Id,
		SetAvailability: req.SetAvailability,
		Availability:    req.Availability,
		SetDesiredRole:  req.SetRole,
		DesiredRole:     req.Role,
		LabelsAdd:       req.LabelsAdd,
		LabelsRm:        req.LabelsRm,
		UpdatedAt:       s.now(),
	}
	if err := s.propose(ctx, &shoalpb.StoreAction{Target: &shoalpb.StoreAction_NodeSpecPatch{NodeSpecPatch: patch}}); err != nil {
		return nil, err
	}
	n, err = s.findNode(n.Id)
	if err != nil {
		return nil, err
	}
	return &shoalpb.UpdateNodeResponse{Node: s.annotate(n, s.managerStatuses())}, nil
}

// checkDemote refuses to demote the last manager or to break quorum.
func (s *Server) checkDemote(n *shoalpb.Node) error {
	managers := 0
	s.Store.View(func(tx store.ReadTx) {
		for _, o := range tx.Nodes() {
			if o.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER {
				managers++
			}
		}
	})
	if managers <= 1 {
		return precondition("attempting to demote the last manager of the swarm")
	}
	return s.checkQuorumWithout(n.Id, "demote")
}

// checkQuorumWithout refuses when removing id from the voters would leave
// fewer reachable voters than a majority of the remaining ones.
func (s *Server) checkQuorumWithout(id, verb string) error {
	servers, err := s.Raft.Servers()
	if err != nil {
		return storeError(err)
	}
	if !isVoter(servers, id) {
		return nil
	}
	ms := s.managerStatuses()
	remaining, reachable := 0, 0
	for _, srv := range servers {
		if !srv.Voter || srv.ID == id {
			continue
		}
		remaining++
		if ms[srv.ID].GetReachability() == shoalpb.Reachability_REACHABILITY_REACHABLE {
			reachable++
		}
	}
	if reachable < remaining/2+1 {
		return precondition("can't %s node %s: only %d of the %d remaining managers are reachable; this would result in a loss of quorum", verb, id, reachable, remaining)
	}
	return nil
}

func isVoter(servers []raftstore.Server, id string) bool {
	for _, srv := range servers {
		if srv.ID == id && srv.Voter {
			return true
		}
	}
	return false
}

// RemoveNode deletes a node from the cluster and refuses its certificate
// from then on.
func (s *Server) RemoveNode(ctx context.Context, req *shoalpb.RemoveNodeRequest) (*shoalpb.RemoveNodeResponse, error) {
	n, err := s.findNode(req.NodeRef)
	if err != nil {
		return nil, err
	}
	servers, err := s.Raft.Servers()
	if err != nil {
		return nil, storeError(err)
	}
	manager := n.GetSpec().GetDesiredRole() == shoalpb.NodeRole_NODE_ROLE_MANAGER || isVoter(servers, n.Id)
	ms := s.managerStatuses()[n.Id]
	if leaderID, _ := s.Raft.Leader(); n.Id == leaderID {
		return nil, precondition("node %s is the swarm leader and can't be removed; demote it first", n.Id)
	}
	if manager {
		if !req.Force || ms.GetReachability() == shoalpb.Reachability_REACHABILITY_REACHABLE {
			return nil, precondition("node %s is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal", n.Id)
		}
		if err := s.checkQuorumWithout(n.Id, "remove"); err != nil {
			return nil, err
		}
	}
	if !req.Force && n.GetStatus().GetState() == shoalpb.NodeState_NODE_STATE_READY {
		return nil, precondition("node %s is not down and can't be removed", n.Id)
	}
	var cl *shoalpb.Cluster
	s.Store.View(func(tx store.ReadTx) { cl = tx.Cluster() })
	if cl == nil {
		return nil, precondition("cluster object not found")
	}
	cl = proto.Clone(cl).(*shoalpb.Cluster)
	cl.RemovedNodes = append(cl.RemovedNodes, n.Id)
	cl.Meta.UpdatedAt = s.now()
	err = s.propose(ctx,
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Node{Node: &shoalpb.Node{Id: n.Id}}},
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: cl}},
	)
	if err != nil {
		return nil, err
	}
	return &shoalpb.RemoveNodeResponse{}, nil
}
