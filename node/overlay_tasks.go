package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/dns"
	"github.com/shoal-project/shoal/overlay/netdb"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
	"github.com/shoal-project/shoal/worker/exec/docker"
)

// A task on overlay networks goes through, on this node:
//
//	Attach  (executor, before the task's container starts, and again
//	        after a daemon restart): its networks' sandboxes, its
//	        interfaces in the sandbox container's namespace, its endpoints
//	        published (or, when its container has a health check, kept
//	        until Publish: once the check passes), its resolver started;
//	withdraw (its container is being stopped): endpoints withdrawn, so no
//	        VIP, port or name leads to it while it stops;
//	release (its container stopped, or the executor's Detach before the
//	        sandbox goes): interfaces, resolver and resolv.conf removed,
//	        networks left when it was their last local task.
//
// The allocator frees a stopped task's addresses, so interfaces go as soon
// as the container stops rather than when the task is removed (which may
// be much later): a new task may get the same address.

var _ docker.Network = (*overlayNet)(nil)

// Attach implements docker.Network.
func (o *overlayNet) Attach(ctx context.Context, t *shoalpb.Task, pid int, publish bool) error {
	mgr, err := o.manager(ctx)
	if err != nil {
		return fmt.Errorf("task %s: %w", t.GetId(), err)
	}
	start := time.Now()
	o.op.Lock()
	defer o.op.Unlock()
	o.mu.Lock()
	cfg, stopped := o.cfg, o.stopped
	o.mu.Unlock()
	if stopped {
		return fmt.Errorf("task %s: the daemon is stopping", t.GetId())
	}
	nets, atts, err := taskAttachments(t, cfg)
	if err != nil {
		return err
	}
	eps, err := taskEndpoints(t, atts, o.nodeID, o.dataAddr, cfg.ingressID())
	if err != nil {
		return fmt.Errorf("task %s: %w", t.GetId(), err)
	}
	for _, n := range nets {
		if err := mgr.EnsureNetwork(ctx, n); err != nil {
			return fmt.Errorf("task %s: %w", t.GetId(), err)
		}
	}
	o.mu.Lock()
	ot := o.tasks[t.GetId()]
	if ot == nil {
		ot = &ovTask{id: t.GetId()}
		o.tasks[t.GetId()] = ot
	}
	ot.task = t
	ot.hostPorts = hostPorts(t)
	joined := slices.Clone(ot.nets)
	o.mu.Unlock()
	for _, n := range nets {
		if !slices.Contains(joined, n.ID) {
			if err := o.joinNetwork(n.ID, cfg); err != nil {
				return fmt.Errorf("task %s: %w", t.GetId(), err)
			}
			o.mu.Lock()
			ot.nets = append(ot.nets, n.ID)
			o.mu.Unlock()
		}
	}
	if err := mgr.AttachTask(ctx, overlay.Task{ID: t.GetId(), PID: pid, Attachments: atts}); err != nil {
		return err
	}
	o.mu.Lock()
	if !publish && len(ot.eps) > 0 {
		// Published before this daemon restarted, once healthy: they
		// stay while the health check is asked again.
		publish = true
	}
	o.mu.Unlock()
	if publish {
		if err := o.publishLocked(ot, eps); err != nil {
			return fmt.Errorf("task %s: %w", t.GetId(), err)
		}
	} else {
		o.mu.Lock()
		ot.unpublished = eps
		o.mu.Unlock()
		o.log.Debug("task endpoints wait for its health check", "task", t.GetId())
	}

	// The task starts with its names, VIPs and published ports in place.
	ids := make([]string, len(nets))
	for i, n := range nets {
		ids[i] = n.ID
	}
	o.syncAndWait(ctx, ids)

	if err := o.startResolver(ot, pid, cfg); err != nil {
		return fmt.Errorf("task %s: %w", t.GetId(), err)
	}
	o.log.Debug("task attached", "task", t.GetId(), "pid", pid, "networks", ids, "took", time.Since(start))
	return nil
}

// Publish implements docker.Network.
func (o *overlayNet) Publish(ctx context.Context, t *shoalpb.Task) error {
	o.mu.Lock()
	ot := o.tasks[t.GetId()]
	pending := ot != nil && len(ot.unpublished) > 0
	o.mu.Unlock()
	if !pending {
		return nil
	}
	o.op.Lock()
	defer o.op.Unlock()
	o.mu.Lock()
	eps := ot.unpublished
	o.mu.Unlock()
	if len(eps) == 0 {
		// Withdrawn meanwhile: the task is stopping.
		return nil
	}
	if err := o.publishLocked(ot, eps); err != nil {
		return fmt.Errorf("task %s: %w", t.GetId(), err)
	}
	o.poke()
	o.log.Debug("task healthy: endpoints published", "task", t.GetId())
	return nil
}

// publishLocked publishes a task's endpoints and records them. Callers
// hold op.
func (o *overlayNet) publishLocked(ot *ovTask, eps []netdb.Endpoint) error {
	for _, e := range eps {
		if err := o.db.Publish(e); err != nil {
			return err
		}
	}
	o.mu.Lock()
	ot.eps = eps
	ot.unpublished = nil
	o.mu.Unlock()
	o.saveEndpoints()
	return nil
}

// startResolver (re)starts the task's resolver in the namespace of pid.
// Callers hold op.
func (o *overlayNet) startResolver(ot *ovTask, pid int, cfg *overlayConfig) error {
	o.mu.Lock()
	old, oldPid := ot.resolver, ot.pid
	var recs []dns.Records
	for _, n := range ot.nets {
		if tbl := o.tables[n]; tbl != nil && n != cfg.ingressID() {
			recs = append(recs, tbl)
		}
	}
	o.mu.Unlock()
	if old != nil && oldPid == pid {
		old.SetRecords(dns.Union(recs...))
		return nil
	}
	if old != nil {
		_ = old.Close()
	}
	rc := o.resolvConf()
	r, err := dns.Start(dns.Config{
		NetNS:         dns.NetNSPath(fmt.Sprintf("/proc/%d/ns/net", pid)),
		Records:       dns.Union(recs...),
		Upstreams:     rc.Upstreams(),
		SearchDomains: rc.Search,
		Logger:        o.log.With("task", ot.id),
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	ot.resolver, ot.pid = r, pid
	o.mu.Unlock()
	return nil
}

// joinNetwork counts a local task on a network; the first one joins it
// in the endpoint table and gives it a DNS table. Callers hold op.
func (o *overlayNet) joinNetwork(id string, cfg *overlayConfig) error {
	o.mu.Lock()
	o.refs[id]++
	first := o.refs[id] == 1
	if first && id != cfg.ingressID() && o.tables[id] == nil {
		o.tables[id] = dns.NewTable()
	}
	o.dirtyNets[id] = true
	o.mu.Unlock()
	if !first {
		return nil
	}
	if err := o.db.JoinNetwork(id); err != nil {
		o.mu.Lock()
		o.refs[id]--
		o.mu.Unlock()
		return err
	}
	o.poke()
	return nil
}

// leaveNetwork undoes joinNetwork; after the last local task the node
// leaves the network and removes its sandbox (the ingress network stays:
// the node's own endpoint is on it). Callers hold op.
func (o *overlayNet) leaveNetwork(ctx context.Context, mgr *overlay.Manager, id string) {
	o.mu.Lock()
	if o.refs[id] > 0 {
		o.refs[id]--
	}
	last := o.refs[id] == 0
	ingress := id == o.cfg.ingressID()
	if last {
		delete(o.refs, id)
		if !ingress {
			delete(o.tables, id)
		}
	}
	o.dirtyNets[id] = true
	o.mu.Unlock()
	if !last || ingress {
		return
	}
	if err := o.db.LeaveNetwork(id); err != nil {
		o.log.Warn("leave network", "network", id, "err", err)
	}
	if mgr != nil {
		if err := mgr.RemoveNetwork(ctx, id); err != nil {
			o.log.Warn("remove network sandbox", "network", id, "err", err)
		}
	}
	o.poke()
}

// withdraw takes a task's endpoints out of the endpoint table: it is
// stopping, and no VIP, published port or name must lead to it any more.
func (o *overlayNet) withdraw(taskID string) {
	o.op.Lock()
	defer o.op.Unlock()
	o.withdrawLocked(taskID)
}

func (o *overlayNet) withdrawLocked(taskID string) {
	o.mu.Lock()
	ot := o.tasks[taskID]
	var eps []string
	if ot != nil {
		for _, e := range ot.eps {
			eps = append(eps, e.NetworkID)
		}
		ot.eps = nil
		ot.unpublished = nil
		ot.hostPorts = nil
		o.dirtyPorts = true
	}
	o.mu.Unlock()
	if len(eps) == 0 {
		return
	}
	for _, n := range eps {
		if err := o.db.Withdraw(n, taskID); err != nil {
			o.log.Warn("withdraw endpoint", "task", taskID, "network", n, "err", err)
		}
	}
	o.saveEndpoints()
	o.poke()
	o.log.Debug("task endpoints withdrawn", "task", taskID)
}

// release removes everything the task had on this node: its endpoints,
// resolver, interfaces and resolv.conf, and the networks it was the last
// local task of. It works for tasks this run never attached.
func (o *overlayNet) release(ctx context.Context, t *shoalpb.Task) error {
	o.op.Lock()
	defer o.op.Unlock()
	id := t.GetId()
	o.withdrawLocked(id)
	o.mu.Lock()
	mgr := o.mgr
	ot := o.tasks[id]
	var r *dns.Resolver
	var joined []string
	if ot != nil {
		r, ot.resolver = ot.resolver, nil
		joined = ot.nets
	}
	o.mu.Unlock()
	if r != nil {
		_ = r.Close()
	}
	if mgr != nil {
		if err := mgr.DetachTask(ctx, id); err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
	}
	o.mu.Lock()
	delete(o.tasks, id)
	o.mu.Unlock()
	for _, n := range joined {
		o.leaveNetwork(ctx, mgr, n)
	}
	if mgr != nil {
		// Sandboxes a previous run kept for this task, when no local task
		// uses them any more.
		for _, a := range t.GetNetworks() {
			o.mu.Lock()
			unused := o.refs[a.GetNetworkId()] == 0 && a.GetNetworkId() != o.cfg.ingressID() && !slices.Contains(joined, a.GetNetworkId())
			o.mu.Unlock()
			if unused {
				if err := mgr.RemoveNetwork(ctx, a.GetNetworkId()); err != nil {
					o.log.Debug("remove network sandbox", "network", a.GetNetworkId(), "err", err)
				}
			}
		}
	}
	if err := os.Remove(o.resolvPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		o.log.Warn("remove resolv.conf of task", "task", id, "err", err)
	}
	o.saveEndpoints()
	o.poke()
	return nil
}

// Detach implements docker.Network.
func (o *overlayNet) Detach(ctx context.Context, t *shoalpb.Task) error {
	return o.release(ctx, t)
}

// ResolvConf implements docker.Network: the task's resolv.conf names its
// resolver, with the host's search domains.
func (o *overlayNet) ResolvConf(t *shoalpb.Task) (string, error) {
	p := o.resolvPath(t.GetId())
	want := dns.TaskResolvConf(o.resolvConf().Search)
	if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, want) {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("resolv.conf of task %s: %w", t.GetId(), err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, want, 0o644); err != nil {
		return "", fmt.Errorf("resolv.conf of task %s: %w", t.GetId(), err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("resolv.conf of task %s: %w", t.GetId(), err)
	}
	return p, nil
}

func (o *overlayNet) resolvDir() string           { return filepath.Join(o.dir, "resolv") }
func (o *overlayNet) resolvPath(id string) string { return filepath.Join(o.resolvDir(), id+".conf") }

// resolvConf is the host's resolv.conf (read again when it changed).
func (o *overlayNet) resolvConf() dns.ResolvConf {
	fi, err := os.Stat(o.opts.resolvConf)
	stamp := ""
	if err == nil {
		stamp = fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	o.mu.Lock()
	if stamp != "" && stamp == o.resolvStamp {
		rc := o.upstreams
		o.mu.Unlock()
		return rc
	}
	o.mu.Unlock()
	b, err := os.ReadFile(o.opts.resolvConf)
	if err != nil {
		o.log.Warn("read the host's resolv.conf; tasks' resolvers forward nowhere", "path", o.opts.resolvConf, "err", err)
	}
	rc := dns.ParseResolvConf(b)
	o.mu.Lock()
	o.upstreams, o.resolvStamp = rc, stamp
	o.mu.Unlock()
	return rc
}

// upstreamLoop gives running resolvers the host's new name servers when
// its resolv.conf changes.
func (o *overlayNet) upstreamLoop() {
	t := time.NewTicker(upstreamPoll)
	defer t.Stop()
	last := fmt.Sprint(o.resolvConf().Upstreams())
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		}
		ups := o.resolvConf().Upstreams()
		if s := fmt.Sprint(ups); s != last {
			last = s
			o.mu.Lock()
			for _, ot := range o.tasks {
				if ot.resolver != nil {
					ot.resolver.SetUpstreams(ups)
				}
			}
			o.mu.Unlock()
			o.log.Info("the host's name servers changed", "upstreams", ups)
		}
	}
}

// overlayExecutor is the docker executor with the overlay's hooks on the
// controllers of tasks on overlay networks: their endpoints are withdrawn
// before their container is stopped, and their interfaces released once it
// has.
type overlayExecutor struct {
	*docker.Executor
	ov *overlayNet
}

// Controller implements exec.Executor.
func (e overlayExecutor) Controller(t *shoalpb.Task) (exec.Controller, error) {
	c, err := e.Executor.Controller(t)
	if err != nil || len(t.GetNetworks()) == 0 {
		return c, err
	}
	dc, ok := c.(*docker.Controller)
	if !ok {
		return c, nil
	}
	return &overlayController{Controller: dc, ov: e.ov, task: t}, nil
}

// overlayController is a task's docker controller (its optional
// interfaces — logs, health, status — come with the embedding).
type overlayController struct {
	*docker.Controller
	ov   *overlayNet
	task *shoalpb.Task
}

// Wait releases the task's network once its container has exited.
func (c *overlayController) Wait(ctx context.Context) error {
	err := c.Controller.Wait(ctx)
	if ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if rerr := c.ov.release(rctx, c.task); rerr != nil {
			c.ov.log.Warn("release the network of an exited task", "task", c.task.GetId(), "err", rerr)
		}
		cancel()
	}
	return err
}

// Shutdown withdraws the task's endpoints before stopping its container,
// and releases its network once it has stopped.
func (c *overlayController) Shutdown(ctx context.Context) error {
	c.ov.withdraw(c.task.GetId())
	if err := c.Controller.Shutdown(ctx); err != nil {
		return err
	}
	if err := c.ov.release(ctx, c.task); err != nil {
		c.ov.log.Warn("release the network of a stopped task", "task", c.task.GetId(), "err", err)
	}
	return nil
}
