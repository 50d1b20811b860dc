package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
)

// TestServicesFollowNodes checks that a global service follows a node
// joining, and that draining a node moves its replicated tasks elsewhere
// while pausing it stops new placements only.
func TestServicesFollowNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m, w := c.managers[0], c.workers[0]
	img := harness.BusyboxImage(t)
	m.MustCLI(t, "service", "create", "-d", "--name", "follow-g", "--mode", "global", "--stop-grace-period", "1s", img, "sleep", "3600")
	m.MustCLI(t, "service", "create", "-d", "--name", "follow-r", "--replicas", "4", "--stop-grace-period", "1s", img, "sleep", "3600")
	c.waitTasks(t, m, "follow-g", 60*time.Second, func(rows []taskRow) error {
		if per := runningPerNode(rows); len(per) != 2 || total(per) != 2 {
			return fmt.Errorf("global tasks per node %v, want one on each of 2", per)
		}
		return nil
	})

	// A node joining gets the global service's task.
	joiner := c.lab.AddHost(t)
	joiner.Start(t)
	tok := strings.TrimSpace(m.MustCLI(t, "swarm", "join-token", "-q", "worker"))
	joiner.MustCLI(t, "swarm", "join", "--token", tok, m.IP+":2377")
	c.ids[joiner] = nodeID(t, joiner)
	c.waitTasks(t, m, "follow-g", 60*time.Second, func(rows []taskRow) error {
		if per := runningPerNode(rows); per[joiner.Name] != 1 || total(per) != 3 {
			return fmt.Errorf("global tasks per node %v, want one on the new node too", per)
		}
		return nil
	})

	// Pause: running tasks stay, new ones go elsewhere.
	before := c.waitTasks(t, m, "follow-r", 60*time.Second, func(rows []taskRow) error {
		if n := total(runningPerNode(rows)); n != 4 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	m.MustCLI(t, "node", "update", "--availability", "pause", w.Name)
	m.MustCLI(t, "service", "scale", "-d", "follow-r=6")
	c.waitTasks(t, m, "follow-r", 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if total(per) != 6 {
			return fmt.Errorf("%d running", total(per))
		}
		if per[w.Name] != runningPerNode(before)[w.Name] {
			return fmt.Errorf("paused node runs %d tasks, had %d", per[w.Name], runningPerNode(before)[w.Name])
		}
		return nil
	})

	// Drain: the node's replicated tasks move, its global task stops.
	m.MustCLI(t, "node", "update", "--availability", "drain", w.Name)
	c.waitTasks(t, m, "follow-r", 60*time.Second, func(rows []taskRow) error {
		per := runningPerNode(rows)
		if per[w.Name] != 0 || total(per) != 6 {
			return fmt.Errorf("running per node %v after draining %s", per, w.Name)
		}
		return nil
	})
	c.waitTasks(t, m, "follow-g", 60*time.Second, func(rows []taskRow) error {
		if per := runningPerNode(rows); per[w.Name] != 0 {
			return fmt.Errorf("global task still runs on the drained node: %v", per)
		}
		return nil
	})
}
