package controlapi_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestGetClusterStripsSecrets(t *testing.T) {
	e := newEnv(t)
	resp, err := e.srv.GetCluster(e.ctx, &shoalpb.GetClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Cluster
	if c.GetRootCa().GetKeyPem() != nil {
		t.Fatal("GetCluster returned the root CA key")
	}
	if c.GossipKey != nil {
		t.Fatal("GetCluster returned the gossip key")
	}
	if c.Id != clusterID || !bytes.Equal(c.RootCa.CertPem, e.root.CertPEM) || c.RootCa.Digest != e.root.Digest {
		t.Fatalf("public cluster fields lost: id %q, digest %q", c.Id, c.GetRootCa().GetDigest())
	}
	stored := e.cluster()
	if c.JoinTokens.GetWorker() != stored.JoinTokens.Worker || c.JoinTokens.GetManager() != stored.JoinTokens.Manager {
		t.Fatal("join tokens differ from the stored ones")
	}
	if !proto.Equal(c.Spec, stored.Spec) {
		t.Fatalf("spec = %v, want %v", c.Spec, stored.Spec)
	}
	// Redacting must not touch the stored object.
	if !bytes.Equal(stored.RootCa.KeyPem, e.root.KeyPEM) || len(stored.GossipKey) != 32 {
		t.Fatal("GetCluster stripped the secrets from the stored cluster")
	}
}

func TestGetClusterMissing(t *testing.T) {
	e := newEnv(t)
	e.propose(&shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Cluster{Cluster: &shoalpb.Cluster{Id: clusterID}}})
	_, err := e.srv.GetCluster(e.ctx, &shoalpb.GetClusterRequest{})
	wantCode(t, err, codes.NotFound)
}

func TestUpdateClusterValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		req   *shoalpb.UpdateClusterRequest
		parts []string
	}{
		{"cert expiry below an hour", &shoalpb.UpdateClusterRequest{SetCertExpiry: true, CertExpiryNs: int64(59 * time.Minute)}, []string{"certificate expiry", "59m0s"}},
		{"zero cert expiry", &shoalpb.UpdateClusterRequest{SetCertExpiry: true}, []string{"certificate expiry", "0s"}},
		{"heartbeat too short", &shoalpb.UpdateClusterRequest{SetHeartbeatPeriod: true, HeartbeatPeriodNs: int64(50 * time.Millisecond)}, []string{"heartbeat period", "50ms"}},
		{"heartbeat too long", &shoalpb.UpdateClusterRequest{SetHeartbeatPeriod: true, HeartbeatPeriodNs: int64(2 * time.Minute)}, []string{"heartbeat period", "2m0s"}},
		{"negative task history", &shoalpb.UpdateClusterRequest{SetTaskHistoryLimit: true, TaskHistoryLimit: -3}, []string{"task history", "-3"}},
		{"zero snapshot interval", &shoalpb.UpdateClusterRequest{SetSnapshotInterval: true}, []string{"snapshot interval"}},
		{"one bad field spoils a good one", &shoalpb.UpdateClusterRequest{SetCertExpiry: true, CertExpiryNs: int64(48 * time.Hour), SetTaskHistoryLimit: true, TaskHistoryLimit: -1, RotateWorkerToken: true}, []string{"-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.cluster()
			applied := e.st.AppliedIndex()
			_, err := e.srv.UpdateCluster(e.ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.parts...)
			e.clusterUnchanged(before)
			if got := e.st.AppliedIndex(); got != applied {
				t.Fatalf("applied index moved from %d to %d", applied, got)
			}
		})
	}
}

func TestUpdateClusterSettings(t *testing.T) {
	e := newEnv(t)
	before := e.cluster()
	resp, err := e.srv.UpdateCluster(e.ctx, &shoalpb.UpdateClusterRequest{
		SetCertExpiry: true, CertExpiryNs: int64(time.Hour),
		SetHeartbeatPeriod: true, HeartbeatPeriodNs: int64(100 * time.Millisecond),
		SetTaskHistoryLimit: true, TaskHistoryLimit: 0,
		SetSnapshotInterval: true, SnapshotInterval: 42,
	})
	if err != nil {
		t.Fatalf("UpdateCluster at the limits: %v", err)
	}
	c := e.cluster()
	spec := c.Spec
	if spec.Ca.NodeCertExpiryNs != int64(time.Hour) || spec.Dispatcher.HeartbeatPeriodNs != int64(100*time.Millisecond) ||
		spec.Orchestration.TaskHistoryRetentionLimit != 0 || spec.Raft.SnapshotInterval != 42 {
		t.Fatalf("stored spec = %v", spec)
	}
	if spec.Name != before.Spec.Name {
		t.Fatalf("spec name changed to %q", spec.Name)
	}
	if c.Meta.UpdatedAt != fixed.UnixNano() || c.Meta.CreatedAt != before.Meta.CreatedAt || c.Meta.Version <= before.Meta.Version {
		t.Fatalf("meta = %v, before %v", c.Meta, before.Meta)
	}
	if c.JoinTokens.Worker != before.JoinTokens.Worker || c.JoinTokens.Manager != before.JoinTokens.Manager {
		t.Fatal("a settings update rotated join tokens")
	}
	if resp.Cluster.GetRootCa().GetKeyPem() != nil || resp.Cluster.GossipKey != nil {
		t.Fatal("UpdateCluster returned secrets")
	}
	if !proto.Equal(resp.Cluster.Spec, spec) {
		t.Fatalf("returned spec %v, stored %v", resp.Cluster.Spec, spec)
	}

	// Fields not asked for keep their values.
	if _, err := e.srv.UpdateCluster(e.ctx, &shoalpb.UpdateClusterRequest{SetTaskHistoryLimit: true, TaskHistoryLimit: 9}); err != nil {
		t.Fatal(err)
	}
	spec = e.cluster().Spec
	if spec.Orchestration.TaskHistoryRetentionLimit != 9 || spec.Ca.NodeCertExpiryNs != int64(time.Hour) ||
		spec.Dispatcher.HeartbeatPeriodNs != int64(100*time.Millisecond) || spec.Raft.SnapshotInterval != 42 {
		t.Fatalf("spec after a single-field update = %v", spec)
	}
}

func TestUpdateClusterRotatesTokens(t *testing.T) {
	e := newEnv(t)
	before := e.cluster()
	resp, err := e.srv.UpdateCluster(e.ctx, &shoalpb.UpdateClusterRequest{RotateWorkerToken: true})
	if err != nil {
		t.Fatalf("rotate worker token: %v", err)
	}
	after := e.cluster()
	if after.JoinTokens.Worker == before.JoinTokens.Worker {
		t.Fatal("worker token did not change")
	}
	if after.JoinTokens.Manager != before.JoinTokens.Manager {
		t.Fatal("rotating the worker token changed the manager token")
	}
	tok, err := identity.ParseJoinToken(after.JoinTokens.Worker)
	if err != nil {
		t.Fatalf("new worker token is malformed: %v", err)
	}
	if tok.Digest != e.root.Digest {
		t.Fatalf("new worker token pins %s, want the CA digest %s", tok.Digest, e.root.Digest)
	}
	if resp.Cluster.JoinTokens.Worker != after.JoinTokens.Worker {
		t.Fatal("response does not carry the new worker token")
	}
	// Nothing else changes.
	b, a := proto.Clone(before).(*shoalpb.Cluster), proto.Clone(after).(*shoalpb.Cluster)
	b.JoinTokens.Worker, a.JoinTokens.Worker = "", ""
	b.Meta, a.Meta = nil, nil
	if !proto.Equal(a, b) {
		t.Fatalf("rotation changed more than the worker token:\nbefore %v\nafter  %v", b, a)
	}

	// And the other way round.
	before = after
	if _, err := e.srv.UpdateCluster(e.ctx, &shoalpb.UpdateClusterRequest{RotateManagerToken: true}); err != nil {
		t.Fatalf("rotate manager token: %v", err)
	}
	after = e.cluster()
	if after.JoinTokens.Manager == before.JoinTokens.Manager {
		t.Fatal("manager token did not change")
	}
	if after.JoinTokens.Worker != before.JoinTokens.Worker {
		t.Fatal("rotating the manager token changed the worker token")
	}
	if tok, err := identity.ParseJoinToken(after.JoinTokens.Manager); err != nil || tok.Digest != e.root.Digest {
		t.Fatalf("new manager token: digest %q, err %v", tok.Digest, err)
	}
}

// racingProposer lets another writer update the cluster once, just before
// the first cluster update it forwards.
type racingProposer struct {
	inner  store.Proposer
	raced  bool
	calls  int
	change func(c *shoalpb.Cluster)
	st     *store.Store
}

func (p *racingProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	p.calls++
	if !p.raced && len(cmd.Actions) == 1 && cmd.Actions[0].GetCluster() != nil {
		p.raced = true
		var cur *shoalpb.Cluster
		p.st.View(func(tx store.ReadTx) { cur = tx.Cluster() })
		other := proto.Clone(cur).(*shoalpb.Cluster)
		p.change(other)
		if _, err := p.inner.Propose(ctx, &shoalpb.Command{Actions: []*shoalpb.StoreAction{{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Cluster{Cluster: other}}}}); err != nil {
			return 0, err
		}
	}
	return p.inner.Propose(ctx, cmd)
}

func TestUpdateClusterRetriesAfterConcurrentWrite(t *testing.T) {
	e := newEnv(t)
	rp := &racingProposer{inner: e.prop, st: e.st, change: func(c *shoalpb.Cluster) {
		c.Spec.Labels = map[string]string{"written-by": "someone-else"}
	}}
	e.srv.Proposer = rp
	if _, err := e.srv.UpdateCluster(e.ctx, &shoalpb.UpdateClusterRequest{SetTaskHistoryLimit: true, TaskHistoryLimit: 11}); err != nil {
		t.Fatalf("UpdateCluster with a concurrent writer: %v", err)
	}
	if rp.calls != 2 {
		t.Fatalf("proposals = %d, want a conflicting one and a retry", rp.calls)
	}
	spec := e.cluster().Spec
	if spec.Orchestration.GetTaskHistoryRetentionLimit() != 11 {
		t.Fatalf("task history limit = %d, want 11", spec.Orchestration.GetTaskHistoryRetentionLimit())
	}
	if spec.Labels["written-by"] != "someone-else" {
		t.Fatalf("the retry overwrote the concurrent change: labels %v", spec.Labels)
	}
}
