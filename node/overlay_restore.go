package node

// What a restarted daemon reads back and re-adopts: the overlay
// configuration and the endpoints its tasks had published, kept under the
// overlay state directory, and the hold that keeps the data plane a
// previous run left until the endpoint table has caught up.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/netdb"
	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/taskdb"
)

// restore is called with the task database before its tasks are
// re-adopted: when a previous run left a configuration, the data plane is
// brought up at once (sandboxes and interfaces of departed tasks removed,
// the endpoints of the others published again).
func (o *overlayNet) restore(recs []*taskdb.Record) error {
	o.mu.Lock()
	o.known = recs
	o.mu.Unlock()
	cfg, err := o.loadConfig()
	if err != nil || cfg == nil {
		return err
	}
	return o.apply(cfg, true)
}

// holdForRestore keeps the data plane a previous run left as it is until
// the endpoint table has caught up: until then this node knows neither the
// cluster's published ports nor (before gossip has joined) its members,
// and programming them would cut traffic the previous run let through.
// Callers hold mu.
func (o *overlayNet) holdForRestore(now time.Time) {
	o.holding = true
	o.holdUntil = now.Add(restoreHoldMax)
	if o.gossipReady {
		o.holdUntil = now.Add(restoreSettle)
	}
}

// desiredState is what a starting data plane keeps: the networks of the
// tasks the node still has (not finished) and the ingress network.
func desiredState(recs []*taskdb.Record, cfg *overlayConfig) overlay.Desired {
	var d overlay.Desired
	seen := map[string]bool{}
	add := func(n overlay.Network) {
		if !seen[n.ID] {
			seen[n.ID] = true
			d.Networks = append(d.Networks, n)
		}
	}
	if cfg.Ingress != nil {
		add(cfg.Ingress.Network)
	}
	for _, r := range recs {
		st := r.Status
		if st == nil {
			st = r.Task.GetStatus()
		}
		if len(r.Task.GetNetworks()) == 0 || st.GetState() > shoalpb.TaskState_TASK_STATE_RUNNING {
			continue
		}
		nets, _, err := taskAttachments(r.Task, cfg)
		if err != nil {
			continue
		}
		d.Tasks = append(d.Tasks, r.Task.GetId())
		for _, n := range nets {
			add(n)
		}
	}
	return d
}

// republish publishes again, before gossip reaches the cluster, the
// endpoints of the tasks a previous run had published and the node still
// has, so that nobody sees them go; the data plane those tasks use is
// left as it is until the endpoint table has caught up.
func (o *overlayNet) republish(recs []*taskdb.Record, cfg *overlayConfig) {
	saved, err := o.loadEndpoints()
	if err != nil {
		o.log.Warn("read the endpoints published before the restart", "err", err)
	}
	keep := map[string]*shoalpb.Task{}
	for _, id := range desiredState(recs, cfg).Tasks {
		for _, r := range recs {
			if r.Task.GetId() == id {
				keep[id] = r.Task
			}
		}
	}
	o.mu.Lock()
	// Until the hold set by start ends, every restored network keeps what
	// the previous run programmed, as do the mesh and the data-path
	// filter.
	for _, n := range desiredState(recs, cfg).Networks {
		o.held[n.ID] = true
	}
	o.mu.Unlock()
	for id, eps := range saved {
		t := keep[id]
		if t == nil || len(eps) == 0 {
			continue
		}
		ot := &ovTask{id: id, task: t, eps: eps, hostPorts: hostPorts(t)}
		for _, e := range eps {
			ot.nets = append(ot.nets, e.NetworkID)
			o.joinNetwork(e.NetworkID, cfg)
			o.mu.Lock()
			o.held[e.NetworkID] = true
			o.mu.Unlock()
			if err := o.db.Publish(e); err != nil {
				o.log.Warn("publish endpoint again", "task", id, "network", e.NetworkID, "err", err)
			}
		}
		o.mu.Lock()
		o.tasks[id] = ot
		o.mu.Unlock()
	}
	o.saveEndpoints()
	o.poke()
}

func (o *overlayNet) configPath() string { return filepath.Join(o.dir, "config.json") }

func (o *overlayNet) endpointsPath() string { return filepath.Join(o.dir, "endpoints.json") }

func (o *overlayNet) loadConfig() (*overlayConfig, error) {
	b, err := os.ReadFile(o.configPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c overlayConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", o.configPath(), err)
	}
	if c.DataPathPort == 0 {
		return nil, fmt.Errorf("%s: no data path port", o.configPath())
	}
	return &c, nil
}

func (o *overlayNet) saveConfig(c *overlayConfig) error {
	return writeJSON(o.configPath(), c)
}

// loadEndpoints reads what saveEndpoints wrote: per task, the endpoints
// it had published.
func (o *overlayNet) loadEndpoints() (map[string][]netdb.Endpoint, error) {
	b, err := os.ReadFile(o.endpointsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out map[string][]netdb.Endpoint
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", o.endpointsPath(), err)
	}
	return out, nil
}

// saveEndpoints records the endpoints of the local tasks. Callers hold
// op.
func (o *overlayNet) saveEndpoints() {
	o.mu.Lock()
	out := map[string][]netdb.Endpoint{}
	for id, t := range o.tasks {
		if len(t.eps) > 0 {
			out[id] = t.eps
		}
	}
	o.mu.Unlock()
	if err := writeJSON(o.endpointsPath(), out); err != nil {
		o.log.Warn("save the published endpoints", "err", err)
	}
}

// writeJSON replaces path with v's JSON, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removeStaleResolvConfs removes the resolv.conf files of tasks not kept.
func (o *overlayNet) removeStaleResolvConfs(keep []string) {
	ents, err := os.ReadDir(o.resolvDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		id := e.Name()
		if ext := filepath.Ext(id); ext == ".conf" {
			id = id[:len(id)-len(ext)]
		}
		if !slices.Contains(keep, id) {
			os.Remove(filepath.Join(o.resolvDir(), e.Name()))
		}
	}
}
