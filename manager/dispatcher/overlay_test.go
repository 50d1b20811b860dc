package dispatcher

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestHeartbeatOverlayConfig: a node learns from its heartbeat the data
// path port, the ingress network with its own address on it, and which
// networks are internal — everything its overlay data plane needs, as
// workers hold no store.
func TestHeartbeatOverlayConfig(t *testing.T) {
	e := newEnv(t, 0)
	e.addNode("w1", shoalpb.NodeRole_NODE_ROLE_WORKER, shoalpb.NodeState_NODE_STATE_READY)

	// No data path port configured: the default; no ingress address yet.
	resp, err := e.beat("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetOverlay(); got.GetDataPathPort() != 4789 || got.GetIngress() != nil || len(got.GetInternalNetworks()) != 0 {
		t.Fatalf("overlay config before any network = %v", got)
	}
	ingress := &shoalpb.Network{Id: "ing", Vni: 4096, Spec: &shoalpb.NetworkSpec{Name: "ingress", Ingress: true},
		Ipam: &shoalpb.IPAMConfig{Subnet: "198.19.0.0/24", Gateway: "198.19.0.1"}}
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: ingress}})
	// The ingress network, before the node has an address on it.
	resp, err = e.beat("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIngress := &shoalpb.NetworkAttachment{NetworkId: "ing", Vni: 4096, Subnet: "198.19.0.0/24", Gateway: "198.19.0.1", NetworkName: "ingress"}
	if !proto.Equal(resp.GetOverlay().GetIngress(), wantIngress) {
		t.Fatalf("ingress before the node's address = %v", resp.GetOverlay().GetIngress())
	}

	var c *shoalpb.Cluster
	e.st.View(func(tx store.ReadTx) { c = proto.Clone(tx.Cluster()).(*shoalpb.Cluster) })
	c.NetworkConfig = &shoalpb.NetworkConfig{DataPathPort: 7789}
	back := &shoalpb.Network{Id: "back", Vni: 4097, Spec: &shoalpb.NetworkSpec{Name: "back", Internal: true},
		Ipam: &shoalpb.IPAMConfig{Subnet: "198.19.1.0/24", Gateway: "198.19.1.1"}}
	front := &shoalpb.Network{Id: "front", Vni: 4098, Spec: &shoalpb.NetworkSpec{Name: "front"},
		Ipam: &shoalpb.IPAMConfig{Subnet: "198.19.2.0/24", Gateway: "198.19.2.1"}}
	n := proto.Clone(e.node("w1")).(*shoalpb.Node)
	// An attachment on a network that is not the ingress one is not taken
	// for it.
	n.Attachments = []*shoalpb.NodeAttachment{{NetworkId: "front", Addr: "198.19.2.9/24"}, {NetworkId: "ing", Addr: "198.19.0.7/24"}}
	e.propose(
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: c}},
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: back}},
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: front}},
		&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Node{Node: n}},
	)
	resp, err = e.beat("w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &shoalpb.OverlayConfig{
		DataPathPort: 7789,
		Ingress: &shoalpb.NetworkAttachment{NetworkId: "ing", Vni: 4096, Subnet: "198.19.0.0/24", Gateway: "198.19.0.1",
			Addresses: []string{"198.19.0.7/24"}, NetworkName: "ingress"},
		InternalNetworks: []string{"back"},
	}
	if !proto.Equal(resp.GetOverlay(), want) {
		t.Fatalf("overlay config = %v\nwant %v", resp.GetOverlay(), want)
	}
}
