package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// TestForceNewCluster kills two of three managers, shows the survivor has
// no quorum, recovers it with swarm init --force-new-cluster, and checks
// the data survived, writes work again and a dead manager can be removed.
func TestForceNewCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 1)
	survivor := c.managers[0]
	survivor.MustCLI(t, "node", "update", "--label-add", "before=crash", c.workers[0].Name)
	for _, m := range c.managers[1:] {
		m.Kill(t)
	}
	expectCLIError(t, survivor, "no quorum", "node", "update", "--label-add", "x=1", c.workers[0].Name)

	survivor.MustCLI(t, "swarm", "init", "--force-new-cluster")
	survivor.MustCLI(t, "node", "update", "--label-add", "after=recovery", c.workers[0].Name)
	got := survivor.MustCLI(t, "node", "inspect", "--format", "{{json .Spec.Labels}}", c.workers[0].Name)
	if !strings.Contains(got, `"before":"crash"`) || !strings.Contains(got, `"after":"recovery"`) {
		t.Fatalf("labels after recovery: %s", got)
	}
	rows := c.waitNodes(t, survivor, 30*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, survivor.Name); r.ManagerStatus != "Leader" {
			return fmt.Errorf("survivor is %q", r.ManagerStatus)
		}
		for _, m := range c.managers[1:] {
			if r := rowOf(rows, m.Name); r.ManagerStatus != "" || r.Status != "Down" {
				return fmt.Errorf("dead manager %s shows %s/%q", m.Name, r.Status, r.ManagerStatus)
			}
		}
		if r := rowOf(rows, c.workers[0].Name); r.Status != "Ready" {
			return fmt.Errorf("worker is %s", r.Status)
		}
		return nil
	})
	survivor.MustCLI(t, "node", "rm", c.managers[1].Name)
	rows = c.waitNodes(t, survivor, 10*time.Second, func(rows []nodeRow) error {
		if len(rows) != 3 {
			return fmt.Errorf("%d nodes after rm", len(rows))
		}
		return nil
	})
	_ = rows
	// The survivor keeps its new cluster across a restart.
	survivor.Restart(t)
	c.waitNodes(t, survivor, 30*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, survivor.Name); r.ManagerStatus != "Leader" {
			return fmt.Errorf("survivor is %q after restart", r.ManagerStatus)
		}
		return nil
	})
}

// TestRemoveDeadManager removes a killed manager with node rm --force: the
// cluster drops it from the Raft voters and keeps quorum with the other two.
func TestRemoveDeadManager(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 0)
	m := c.managers[0]
	leader := c.leader(t, m)
	var dead *harness.Host
	for _, h := range c.managers {
		if h != leader {
			dead = h
			break
		}
	}
	dead.Kill(t)
	c.waitNodes(t, leader, 30*time.Second, func(rows []nodeRow) error {
		if r := rowOf(rows, dead.Name); r.ManagerStatus != "Unreachable" {
			return fmt.Errorf("%s is %q", dead.Name, r.ManagerStatus)
		}
		return nil
	})
	expectCLIError(t, leader, "must be demoted", "node", "rm", dead.Name)
	leader.MustCLI(t, "node", "rm", "--force", dead.Name)
	c.waitNodes(t, leader, 30*time.Second, func(rows []nodeRow) error {
		if len(rows) != 2 {
			return fmt.Errorf("%d nodes", len(rows))
		}
		return nil
	})
	// With two voters left, both alive, writes still work.
	leader.MustCLI(t, "node", "update", "--label-add", "two=voters", leader.Name)
}

// TestCorruptDataDir restarts daemons on damaged data directories: they
// refuse to start, say why, and leave the files as they were.
func TestCorruptDataDir(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	w := c.workers[0]
	w.Stop(t)
	state := filepath.Join(w.DataDir, "swarm", "state.json")
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := w.StartErr()
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("start on a corrupt state file: %v", err)
	}
	if b, _ := os.ReadFile(state); string(b) != "{not json" {
		t.Fatalf("state file was changed to %q", b)
	}

	m := c.managers[0]
	m.Stop(t)
	db := filepath.Join(m.DataDir, "swarm", "raft", "raft.db")
	garbage := []byte(strings.Repeat("garbage!", 1024))
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	err = m.StartErr()
	if err == nil || !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("start on a corrupt raft.db: %v", err)
	}
	if b, _ := os.ReadFile(db); string(b) != string(garbage) {
		t.Fatal("raft.db was changed")
	}
}
