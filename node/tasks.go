package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"

	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/exec"
	"github.com/shoal-project/shoal/worker/exec/docker"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// taskRuntime is the part of the node that runs tasks.
type taskRuntime struct {
	db       *taskdb.DB
	manager  *worker.TaskManager
	reporter *worker.Reporter
}

// newExecutor returns the executor tasks run through: the Docker Engine
// (found the way the docker CLI finds it: DOCKER_HOST or the default
// socket), with API-version negotiation for older engines, attaching tasks
// on overlay networks through ov.
func (d *Daemon) newExecutor(nodeID string, ov *overlayNet) (exec.Executor, func(context.Context, map[string]bool), error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, nil, fmt.Errorf("docker client: %w", err)
	}
	// Negotiate the API version now, before the client is shared: a lazy
	// first negotiation writes the version while other calls read it.
	nctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cli.NegotiateAPIVersion(nctx)
	cancel()
	e := docker.New(cli, nodeID, d.cfg.NodeName)
	e.Network = ov
	removeOrphans := func(ctx context.Context, keep map[string]bool) {
		removed, err := e.RemoveOrphans(ctx, keep)
		if err != nil {
			d.log.Warn("remove containers of tasks this node no longer has", "err", err)
			return
		}
		for _, c := range removed {
			d.log.Info("removed container of a task this node no longer has", "container", c.Name, "task", c.TaskID)
		}
	}
	return overlayExecutor{Executor: e, ov: ov}, removeOrphans, nil
}

// startTasks starts the task runtime of a cluster: local task database,
// re-adoption of recorded tasks, removal of containers of unknown tasks,
// the assignment session, the status reporter and the log publisher.
func (c *cluster) startTasks() error {
	d := c.d
	dir := filepath.Join(d.layout.swarmDir(), "worker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("worker directory: %w", err)
	}
	db, err := taskdb.Open(filepath.Join(dir, "tasks.db"))
	if err != nil {
		return err
	}
	// The data plane a previous run left comes up, and the endpoints of
	// the tasks still here are published again, before the tasks are
	// re-adopted.
	recs, err := db.All()
	if err != nil {
		db.Close()
		return err
	}
	if err := c.overlay.restore(recs); err != nil {
		d.log.Error("overlay networking could not be restored; waiting for the managers' configuration", "err", err)
	}
	executor, removeOrphans, err := d.newExecutor(c.state.NodeID, c.overlay)
	if err != nil {
		db.Close()
		return err
	}
	rep := &worker.Reporter{Logger: d.log.With("component", "reporter"), Dial: c.pool.Dial, Managers: c.managerPeers}
	tm := &worker.TaskManager{Logger: d.log.With("component", "tasks"), Executor: executor, DB: db, Reporter: rep, Now: time.Now}
	if err := tm.Start(c.ctx); err != nil {
		db.Close()
		return err
	}
	keep := map[string]bool{}
	for _, id := range tm.Running() {
		keep[id] = true
	}
	c.tasks = &taskRuntime{db: db, manager: tm, reporter: rep}
	logs := &worker.LogPublisher{Logger: d.log.With("component", "logs"), Dial: c.pool.Dial, Managers: c.managerPeers, Tasks: tm, NodeID: c.state.NodeID}
	c.wg.Add(4)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		removeOrphans(ctx, keep)
	}()
	go func() { defer c.wg.Done(); rep.Run(c.ctx) }()
	go func() { defer c.wg.Done(); logs.Run(c.ctx) }()
	go func() {
		defer c.wg.Done()
		worker.RunAssignments(c.ctx, worker.AssignmentsConfig{
			Logger:     d.log.With("component", "assignments"),
			Dial:       c.pool.Dial,
			Managers:   c.managerPeers,
			OnComplete: tm.Complete,
			OnChanges:  tm.Changes,
		})
	}()
	return nil
}

// stopTasks waits for the task runners (their containers keep running)
// and closes the task database. The cluster's context must be done.
func (c *cluster) stopTasks() {
	if c.tasks == nil {
		return
	}
	c.tasks.manager.Wait()
	c.tasks.db.Close()
}

// removeAllTasks stops and removes every task's container, for a node
// leaving the swarm. It waits at most until ctx ends.
func (c *cluster) removeAllTasks(ctx context.Context) {
	if c.tasks == nil {
		return
	}
	c.tasks.manager.Complete(nil)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for len(c.tasks.manager.Running()) > 0 {
		select {
		case <-ctx.Done():
			c.d.log.Warn("leaving with task containers still being removed", "left", len(c.tasks.manager.Running()))
			return
		case <-t.C:
		}
	}
}
