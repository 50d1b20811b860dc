package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestClusterFailoverAndRestart forms 3 managers + 2 workers, kills the
// leader and a worker with SIGKILL, checks a new leader takes writes and
// the dead show Unreachable/Down, then restarts the old leader and checks
// it is Reachable again under its old identity, without a re-join.
func TestClusterFailoverAndRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 2)
	first := c.managers[0]

	rows := c.waitNodes(t, first, 30*time.Second, func(rows []nodeRow) error {
		leaders, reachable := 0, 0
		for _, r := range rows {
			switch r.ManagerStatus {
			case "Leader":
				leaders++
			case "Reachable":
				reachable++
			}
		}
		if leaders != 1 || reachable != 2 {
			return fmt.Errorf("%d leaders and %d reachable managers, want 1 and 2", leaders, reachable)
		}
		return nil
	})
	for _, w := range c.workers {
		if r := rowOf(rows, w.Name); r.ManagerStatus != "" || r.Availability != "Active" {
			t.Fatalf("worker row %+v", r)
		}
	}
	// The self marker points at the node answering.
	if out := first.MustCLI(t, "node", "ls"); !strings.Contains(out, c.ids[first]+" *") {
		t.Fatalf("node ls lacks the self marker:\n%s", out)
	}

	// A worker answers no cluster API call, with docker's message.
	expectCLIError(t, c.workers[0], "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.", "node", "ls")

	old := c.leader(t, first)
	var survivor *harness.Host
	for _, m := range c.managers {
		if m != old {
			survivor = m
			break
		}
	}
	old.Kill(t)
	killed := time.Now()
	harness.Eventually(t, 20*time.Second, "a write on a surviving manager", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, stderr, err := survivor.CLI(ctx, "node", "update", "--label-add", "failover=1", c.workers[0].Name)
		if err != nil {
			return fmt.Errorf("%v: %s", err, stderr)
		}
		return nil
	})
	t.Logf("first write on a survivor %.2fs after the leader was killed", time.Since(killed).Seconds())

	c.workers[1].Kill(t)
	c.waitNodes(t, survivor, 30*time.Second, func(rows []nodeRow) error {
		o, w := rowOf(rows, old.Name), rowOf(rows, c.workers[1].Name)
		if o.ManagerStatus != "Unreachable" || o.Status != "Down" {
			return fmt.Errorf("killed leader shows %s/%s, want Down/Unreachable", o.Status, o.ManagerStatus)
		}
		if w.Status != "Down" {
			return fmt.Errorf("killed worker shows %s, want Down", w.Status)
		}
		leaders := 0
		for _, r := range rows {
			if r.ManagerStatus == "Leader" {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d leaders", leaders)
		}
		return nil
	})

	// Restart without any join: the same identity comes back Reachable.
	old.Start(t)
	c.workers[1].Start(t)
	if id := nodeID(t, old); id != c.ids[old] {
		t.Fatalf("restarted manager has node ID %s, want %s", id, c.ids[old])
	}
	c.waitNodes(t, survivor, 30*time.Second, func(rows []nodeRow) error {
		if len(rows) != 5 {
			return fmt.Errorf("%d nodes after restart, want 5", len(rows))
		}
		o, w := rowOf(rows, old.Name), rowOf(rows, c.workers[1].Name)
		if o.ManagerStatus != "Reachable" || o.Status != "Ready" || w.Status != "Ready" {
			return fmt.Errorf("after restart: manager %s/%s, worker %s", o.Status, o.ManagerStatus, w.Status)
		}
		return nil
	})
	// The restarted manager serves reads and sees the write made while it
	// was dead.
	out := old.MustCLI(t, "node", "inspect", "--format", "{{json .Spec.Labels}}", c.workers[0].Name)
	if !strings.Contains(out, `"failover":"1"`) {
		t.Fatalf("restarted manager's view of the labels: %s", out)
	}
}

// TestMinorityPartition cuts the leader off: it must refuse writes with a
// clear no-quorum error within seconds while the majority elects a leader
// and keeps accepting writes; after healing every acknowledged write is
// present on every manager.
func TestMinorityPartition(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 0)
	target := c.managers[0].Name
	minority := c.leader(t, c.managers[0])
	var majority []*harness.Host
	for _, m := range c.managers {
		if m != minority {
			majority = append(majority, m)
		}
	}

	type ack struct{ key string }
	acked := make(chan ack, 100000)
	var ackCount atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	clients := map[*harness.Host]shoalpb.ControlClient{}
	for _, m := range c.managers {
		clients[m] = control(t, m)
	}
	const writers = 6
	for w := 0; w < writers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			m := c.managers[w%len(c.managers)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
				_, err := clients[m].UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: target, LabelsAdd: map[string]string{key: "1"}})
				cancel()
				if err == nil {
					acked <- ack{key}
					ackCount.Add(1)
				}
			}
		}(w)
	}

	minority.Partition(t)
	start := time.Now()
	// The cut-off manager answers a write with a no-quorum error quickly.
	harness.Eventually(t, 15*time.Second, "no-quorum error on the minority", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		t0 := time.Now()
		_, err := clients[minority].UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: target, LabelsAdd: map[string]string{"minority": "1"}})
		if err == nil {
			return fmt.Errorf("write on the minority succeeded")
		}
		if !strings.Contains(err.Error(), "no quorum") {
			return fmt.Errorf("minority error %v does not say no quorum", err)
		}
		if d := time.Since(t0); d > 6*time.Second {
			return fmt.Errorf("minority took %s to refuse", d)
		}
		return nil
	})
	t.Logf("minority refused writes %.1fs after the partition", time.Since(start).Seconds())
	// The majority keeps accepting writes.
	harness.Eventually(t, 20*time.Second, "write on the majority", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := clients[majority[0]].UpdateNode(ctx, &shoalpb.UpdateNodeRequest{NodeRef: target, LabelsAdd: map[string]string{"majority": "1"}})
		return err
	})
	// Keep the fault until a good number of writes were acknowledged
	// during it (however slow the machine is), then heal.
	during := ackCount.Load()
	harness.Eventually(t, 60*time.Second, "writes acknowledged during the partition", func() error {
		if n := ackCount.Load() - during; n < 20 {
			return fmt.Errorf("%d writes acknowledged since the majority took over", n)
		}
		return nil
	})
	minority.Heal(t)
	// Let the writers run across the heal as well; they stop after the
	// cluster has a Reachable view of all three managers again.
	c.waitNodes(t, majority[0], 30*time.Second, func(rows []nodeRow) error {
		for _, m := range c.managers {
			if r := rowOf(rows, m.Name); r.ManagerStatus != "Leader" && r.ManagerStatus != "Reachable" {
				return fmt.Errorf("%s is %q", m.Name, r.ManagerStatus)
			}
		}
		return nil
	})
	close(stop)
	for w := 0; w < writers; w++ {
		<-done
	}
	close(acked)
	var keys []string
	for a := range acked {
		keys = append(keys, a.key)
	}
	if len(keys) < 20 {
		t.Fatalf("only %d writes were acknowledged", len(keys))
	}
	t.Logf("%d writes acknowledged during the fault", len(keys))
	for _, m := range c.managers {
		harness.Eventually(t, 20*time.Second, "acknowledged writes on "+m.Name, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := clients[m].GetNode(ctx, &shoalpb.GetNodeRequest{NodeRef: target})
			if err != nil {
				return err
			}
			labels := resp.Node.GetSpec().GetLabels()
			for _, k := range keys {
				if labels[k] != "1" {
					return fmt.Errorf("acknowledged label %s missing on %s", k, m.Name)
				}
			}
			if labels["majority"] != "1" {
				return fmt.Errorf("majority write missing")
			}
			return nil
		})
	}
}
