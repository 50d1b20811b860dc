package scheduler

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-project/shoal/manager/constraint"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// verdict names the first filter a node fails for a task, or pass.
type verdict uint8

const (
	pass verdict = iota
	notReady
	constraintFailed
	insufficientCPU
	insufficientMemory
	maxReplicasReached
	hostPortConflict
)

// requirements is everything about a task that decides where it may run.
// Tasks with equal requirements are scheduled as one group.
type requirements struct {
	serviceID   string
	constraints []constraint.Constraint
	preferences []spreadKey
	maxReplicas uint64
	reserve     reservation
	hostPorts   []string
	// err makes the task unplaceable; its text is the reason.
	err error
}

// requirementsOf reads t's requirements, parsing its constraints and
// preferences. A bad constraint or preference is kept in err.
func requirementsOf(t *shoalpb.Task) requirements {
	p := t.GetSpec().GetPlacement()
	r := requirements{
		serviceID:   t.GetServiceId(),
		maxReplicas: p.GetMaxReplicas(),
		reserve:     reservationsOf(t),
		hostPorts:   hostPortsOf(t),
	}
	r.constraints, r.err = constraint.Parse(p.GetConstraints())
	if r.err != nil {
		return r
	}
	for _, pref := range p.GetPreferences() {
		if pref == nil {
			continue
		}
		k, err := parseSpreadKey(pref.GetSpreadDescriptor())
		if err != nil {
			r.err = err
			return r
		}
		r.preferences = append(r.preferences, k)
	}
	return r
}

// groupKey identifies the requirements of t cheaply, without parsing, so
// that pending tasks can be grouped before their placement is evaluated.
func groupKey(t *shoalpb.Task) string {
	var b strings.Builder
	b.WriteString(t.GetServiceId())
	p := t.GetSpec().GetPlacement()
	b.WriteByte(0)
	for _, c := range p.GetConstraints() {
		b.WriteString(c)
		b.WriteByte(1)
	}
	b.WriteByte(0)
	for _, pref := range p.GetPreferences() {
		b.WriteString(pref.GetSpreadDescriptor())
		b.WriteByte(1)
	}
	b.WriteByte(0)
	for _, port := range hostPortsOf(t) {
		b.WriteString(port)
		b.WriteByte(1)
	}
	b.WriteByte(0)
	r := reservationsOf(t)
	var num [20]byte
	b.Write(strconv.AppendUint(num[:0], p.GetMaxReplicas(), 10))
	b.WriteByte(0)
	b.Write(strconv.AppendInt(num[:0], r.nanoCPUs, 10))
	b.WriteByte(0)
	b.Write(strconv.AppendInt(num[:0], r.memoryBytes, 10))
	return b.String()
}

// staticCheck runs the filters whose outcome cannot change while tasks are
// being placed: readiness and constraints. For constraintFailed it also
// returns the index of the first constraint the node fails.
func (r *requirements) staticCheck(ni *NodeInfo) (verdict, int) {
	if !ni.ready() {
		return notReady, 0
	}
	for i, c := range r.constraints {
		if !c.Match(ni.Node) {
			return constraintFailed, i
		}
	}
	return pass, 0
}

// matches reports whether n satisfies all of r's constraints.
func (r *requirements) matches(n *shoalpb.Node) bool {
	return constraint.MatchAll(r.constraints, n)
}

// dynamicCheck runs the filters that depend on what is already placed on
// the node: resources, the per-node replica limit and host ports. Placing
// tasks only ever turns a pass into a failure.
func (r *requirements) dynamicCheck(ni *NodeInfo) verdict {
	avail := ni.AvailableResources
	if r.reserve.nanoCPUs > 0 && r.reserve.nanoCPUs > avail.GetNanoCpus() {
		return insufficientCPU
	}
	if r.reserve.memoryBytes > 0 && r.reserve.memoryBytes > avail.GetMemoryBytes() {
		return insufficientMemory
	}
	if r.maxReplicas > 0 && uint64(ni.ActiveTasksByService[r.serviceID]) >= r.maxReplicas {
		return maxReplicasReached
	}
	for _, p := range r.hostPorts {
		if ni.UsedHostPorts[p] {
			return hostPortConflict
		}
	}
	return pass
}

// check runs every filter in order.
func (r *requirements) check(ni *NodeInfo) (verdict, int) {
	if v, i := r.staticCheck(ni); v != pass {
		return v, i
	}
	return r.dynamicCheck(ni), 0
}

// spreadKey is a parsed placement preference: the node or engine label to
// spread tasks over.
type spreadKey struct {
	engine bool
	label  string
}

// parseSpreadKey accepts node.labels.<label> and engine.labels.<label>,
// with the prefix in any case.
func parseSpreadKey(descriptor string) (spreadKey, error) {
	d := strings.TrimSpace(descriptor)
	for _, pfx := range []struct {
		prefix string
		engine bool
	}{{constraint.NodeLabelPrefix, false}, {constraint.EngineLabelPrefix, true}} {
		if len(d) > len(pfx.prefix) && strings.EqualFold(d[:len(pfx.prefix)], pfx.prefix) {
			return spreadKey{engine: pfx.engine, label: d[len(pfx.prefix):]}, nil
		}
	}
	return spreadKey{}, fmt.Errorf("invalid placement preference %q: spread descriptor must be node.labels.<label> or engine.labels.<label>", descriptor)
}

// value returns the node's value for the key, and whether it has one.
func (k spreadKey) value(n *shoalpb.Node) (string, bool) {
	var labels map[string]string
	if k.engine {
		labels = n.GetDescription().GetEngineLabels()
	} else {
		labels = n.GetSpec().GetLabels()
	}
	v, ok := labels[k.label]
	return v, ok
}
