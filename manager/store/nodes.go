package store

import (
	"fmt"
	"sort"
	"strings"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// ErrAmbiguous is returned when a reference matches several objects.
var ErrAmbiguous = fmt.Errorf("reference is ambiguous")

func (tx readTx) FindNode(ref string) (*shoalpb.Node, error) {
	if ref == "" {
		return nil, fmt.Errorf("node reference is empty: %w", ErrNotExist)
	}
	if n := tx.Node(ref); n != nil {
		return n, nil
	}
	var byPrefix, byName []*shoalpb.Node
	for _, n := range tx.Nodes() {
		if strings.HasPrefix(n.Id, ref) {
			byPrefix = append(byPrefix, n)
		}
		if n.GetDescription().GetHostname() == ref {
			byName = append(byName, n)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return nil, fmt.Errorf("node %s: %d nodes have this hostname, use an ID: %w", ref, len(byName), ErrAmbiguous)
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return nil, fmt.Errorf("node %s: %d node IDs start with it: %w", ref, len(byPrefix), ErrAmbiguous)
	}
	return nil, fmt.Errorf("node %s not found: %w", ref, ErrNotExist)
}

// SortNodes orders nodes by hostname, then ID, the order node ls shows.
func SortNodes(nodes []*shoalpb.Node) {
	sort.Slice(nodes, func(i, j int) bool {
		a, b := nodes[i].GetDescription().GetHostname(), nodes[j].GetDescription().GetHostname()
		if a != b {
			return a < b
		}
		return nodes[i].Id < nodes[j].Id
	})
}

func getNode(txn *memdb.Txn, id string) *shoalpb.Node {
	return readTx{txn: txn}.Node(id)
}

func applyNodeSpecPatch(txn *memdb.Txn, index uint64, p *shoalpb.NodeSpecPatch) (*shoalpb.Node, *shoalpb.Node, error) {
	old := getNode(txn, p.NodeId)
	if old == nil {
		return nil, nil, fmt.Errorf("node %s: %w", p.NodeId, ErrNotExist)
	}
	n := clone(old)
	if n.Spec == nil {
		n.Spec = &shoalpb.NodeSpec{}
	}
	if p.SetAvailability {
		n.Spec.Availability = p.Availability
	}
	if p.SetDesiredRole {
		n.Spec.DesiredRole = p.DesiredRole
	}
	for _, k := range p.LabelsRm {
		delete(n.Spec.Labels, k)
	}
	if len(p.LabelsAdd) > 0 && n.Spec.Labels == nil {
		n.Spec.Labels = make(map[string]string, len(p.LabelsAdd))
	}
	for k, v := range p.LabelsAdd {
		n.Spec.Labels[k] = v
	}
	n.Meta = touched(n.Meta, index, p.UpdatedAt)
	if err := txn.Insert(tableNode, n); err != nil {
		return nil, nil, err
	}
	return old, n, nil
}

func applyNodeStatusPatch(txn *memdb.Txn, index uint64, p *shoalpb.NodeStatusPatch) (*shoalpb.Node, *shoalpb.Node, error) {
	old := getNode(txn, p.NodeId)
	if old == nil {
		return nil, nil, fmt.Errorf("node %s: %w", p.NodeId, ErrNotExist)
	}
	if p.CheckState && old.GetStatus().GetState() != p.OnlyIfState {
		// A conditional patch whose condition no longer holds is a no-op,
		// not an error: the caller's view was simply stale.
		return old, nil, nil
	}
	n := clone(old)
	if p.Status != nil {
		st := clone(p.Status)
		if st.Addr == "" && n.Status != nil {
			st.Addr = n.Status.Addr
		}
		n.Status = st
	}
	if p.SetRole {
		n.Role = p.Role
	}
	if p.Description != nil {
		n.Description = clone(p.Description)
	}
	if p.Certificate != nil {
		n.Certificate = clone(p.Certificate)
	}
	if p.AdvertiseAddr != "" {
		n.AdvertiseAddr = p.AdvertiseAddr
	}
	if p.GossipAddr != "" {
		n.GossipAddr = p.GossipAddr
	}
	n.Meta = touched(n.Meta, index, p.UpdatedAt)
	if err := txn.Insert(tableNode, n); err != nil {
		return nil, nil, err
	}
	return old, n, nil
}

// applyNodeAttachmentsPatch replaces a node's overlay attachments. A node
// removed since is not an error: the allocation was decided on a stale
// view.
func applyNodeAttachmentsPatch(txn *memdb.Txn, index uint64, p *shoalpb.NodeAttachmentsPatch) (*shoalpb.Node, *shoalpb.Node, error) {
	old := getNode(txn, p.NodeId)
	if old == nil {
		return nil, nil, nil
	}
	n := clone(old)
	n.Attachments = make([]*shoalpb.NodeAttachment, len(p.Attachments))
	for i, a := range p.Attachments {
		n.Attachments[i] = clone(a)
	}
	n.Meta = touched(n.Meta, index, p.UpdatedAt)
	if err := txn.Insert(tableNode, n); err != nil {
		return nil, nil, err
	}
	return old, n, nil
}
