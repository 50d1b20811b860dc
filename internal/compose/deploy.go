package compose

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	goUnits "github.com/docker/go-units"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// deploy converts a service's deploy section into spec. at is the path of
// the section ("services.web.deploy").
func (c *converter) deploy(at string, spec *shoalpb.ServiceSpec, d types.DeployConfig) error {
	job := false
	switch d.Mode {
	case "", "replicated":
		replicas := uint64(1)
		if d.Replicas != nil {
			replicas = uint64(*d.Replicas)
		}
		spec.Mode = &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: replicas}}
	case "global", "global-job":
		if d.Replicas != nil {
			return problemf(at+".replicas", "can only be used with replicated or replicated-job mode, not %s", d.Mode)
		}
		if d.Mode == "global" {
			spec.Mode = &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}
		} else {
			spec.Mode = &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}
			job = true
		}
	case "replicated-job":
		j := &shoalpb.ReplicatedJob{}
		if d.Replicas != nil {
			j.MaxConcurrent, j.TotalCompletions = uint64(*d.Replicas), uint64(*d.Replicas)
		}
		spec.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: j}
		job = true
	default:
		return problemf(at+".mode", "must be replicated, global, replicated-job or global-job (got %q)", d.Mode)
	}
	task := spec.Task
	task.Resources = resources(d.Resources)
	var err error
	if task.Restart, err = restartPolicy(at+".restart_policy", d.RestartPolicy); err != nil {
		return err
	}
	if p := d.Placement; len(p.Constraints) > 0 || len(p.Preferences) > 0 || p.MaxReplicas > 0 {
		task.Placement = &shoalpb.Placement{Constraints: nonEmpty(p.Constraints), MaxReplicas: p.MaxReplicas}
		for i, pref := range p.Preferences {
			if pref.Spread == "" {
				return problemf(fmt.Sprintf("%s.placement.preferences[%d].spread", at, i), "is required: the node attribute to spread over, such as node.labels.zone")
			}
			task.Placement.Preferences = append(task.Placement.Preferences, &shoalpb.PlacementPreference{SpreadDescriptor: pref.Spread})
		}
	}
	if job && (d.UpdateConfig != nil || d.RollbackConfig != nil) {
		key := "update_config"
		if d.UpdateConfig == nil {
			key = "rollback_config"
		}
		return problemf(at+"."+key, "cannot be used with %s mode: jobs run to completion and are not rolled out", d.Mode)
	}
	if spec.Update, err = updateConfig(at+".update_config", d.UpdateConfig); err != nil {
		return err
	}
	if spec.Rollback, err = updateConfig(at+".rollback_config", d.RollbackConfig); err != nil {
		return err
	}
	return nil
}

func resources(r types.Resources) *shoalpb.ResourceRequirements {
	conv := func(x *types.Resource) *shoalpb.Resources {
		if x == nil || (x.NanoCPUs == 0 && x.MemoryBytes == 0) {
			return nil
		}
		return &shoalpb.Resources{NanoCpus: nanoCPUs(x.NanoCPUs), MemoryBytes: int64(x.MemoryBytes)}
	}
	out := &shoalpb.ResourceRequirements{Limits: conv(r.Limits), Reservations: conv(r.Reservations)}
	if out.Limits == nil && out.Reservations == nil {
		return nil
	}
	return out
}

func restartPolicy(at string, p *types.RestartPolicy) (*shoalpb.RestartPolicy, error) {
	if p == nil {
		return nil, nil
	}
	out := &shoalpb.RestartPolicy{DelayNs: durationNs(p.Delay)}
	switch p.Condition {
	case "", "any":
	case "on-failure":
		out.Condition = shoalpb.RestartPolicy_CONDITION_ON_FAILURE
	case "none":
		out.Condition = shoalpb.RestartPolicy_CONDITION_NONE
	default:
		return nil, problemf(at+".condition", "must be none, on-failure or any (got %q)", p.Condition)
	}
	if p.MaxAttempts != nil {
		out.MaxAttempts = *p.MaxAttempts
	}
	if p.Window != nil {
		out.WindowNs = int64(*p.Window)
	}
	return out, nil
}

func updateConfig(at string, u *types.UpdateConfig) (*shoalpb.UpdateConfig, error) {
	if u == nil {
		return nil, nil
	}
	// As docker: an update_config without parallelism updates one task
	// at a time.
	out := &shoalpb.UpdateConfig{Parallelism: 1, DelayNs: int64(u.Delay), MaxFailureRatio: u.MaxFailureRatio}
	if u.Parallelism != nil {
		out.Parallelism = *u.Parallelism
	}
	if u.Monitor != 0 {
		out.MonitorNs = proto.Int64(int64(u.Monitor))
	}
	switch u.FailureAction {
	case "", "pause":
	case "continue":
		out.FailureAction = shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE
	case "rollback":
		out.FailureAction = shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK
	default:
		return nil, problemf(at+".failure_action", "must be pause, continue or rollback (got %q)", u.FailureAction)
	}
	switch u.Order {
	case "", "stop-first":
	case "start-first":
		out.Order = shoalpb.UpdateConfig_ORDER_START_FIRST
	default:
		return nil, problemf(at+".order", "must be stop-first or start-first (got %q)", u.Order)
	}
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		return nil, problemf(at+".max_failure_ratio", "must be between 0 and 1 (got %g)", u.MaxFailureRatio)
	}
	return out, nil
}

// mounts converts volumes and tmpfs. Named volumes are scoped to the
// stack (<stack>_<name>) unless the top-level volume is external or
// named, and carry the stack label and the top-level volume's driver.
func (c *converter) mounts(at string, s types.ServiceConfig) ([]*shoalpb.Mount, error) {
	var out []*shoalpb.Mount
	for i, v := range s.Volumes {
		vat := fmt.Sprintf("%s.volumes[%d]", at, i)
		m := &shoalpb.Mount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			m.Type = shoalpb.Mount_TYPE_BIND
			if v.Bind != nil {
				m.BindPropagation = v.Bind.Propagation
			}
		case types.VolumeTypeVolume, "":
			m.Type = shoalpb.Mount_TYPE_VOLUME
			if v.Volume != nil {
				m.VolumeNocopy = v.Volume.NoCopy
				if len(v.Volume.Labels) > 0 {
					m.VolumeLabels = map[string]string(v.Volume.Labels.Clone())
				}
			}
			if v.Source != "" {
				top, ok := c.project.Volumes[v.Source]
				if !ok {
					return nil, problemf(vat+".source", "names volume %q, which is not defined in the top-level volumes", v.Source)
				}
				m.Source = c.resourceName(v.Source, top.Name, bool(top.External))
				if !top.External {
					m.VolumeLabels = stackLabels(c.stack, mergeLabels(top.Labels, m.VolumeLabels))
					m.VolumeDriver = top.Driver
					if len(top.DriverOpts) > 0 {
						m.VolumeDriverOptions = map[string]string(top.DriverOpts)
					}
				}
			}
		case types.VolumeTypeTmpfs:
			m.Type = shoalpb.Mount_TYPE_TMPFS
			if v.Tmpfs != nil {
				m.TmpfsSizeBytes = int64(v.Tmpfs.Size)
				// The specification writes the mode in octal: 1777 is
				// 0o1777.
				digits := strconv.FormatUint(uint64(v.Tmpfs.Mode), 10)
				mode, err := strconv.ParseUint(digits, 8, 32)
				if err != nil {
					return nil, problemf(vat+".tmpfs.mode", "must be a file mode in octal, such as 1777 (got %s)", digits)
				}
				m.TmpfsMode = uint32(mode)
			}
		default:
			return nil, problemf(vat+".type", "must be volume, bind or tmpfs (got %q)", v.Type)
		}
		out = append(out, m)
	}
	for i, t := range s.Tmpfs {
		m, err := tmpfsMount(fmt.Sprintf("%s.tmpfs[%d]", at, i), t)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// tmpfsMount converts a tmpfs entry: /path, or /path:size=64m,mode=1777.
func tmpfsMount(at, entry string) (*shoalpb.Mount, error) {
	target, opts, _ := strings.Cut(entry, ":")
	if !path.IsAbs(target) {
		return nil, problemf(at, "must be an absolute path, optionally followed by :size=...,mode=... (got %q)", entry)
	}
	m := &shoalpb.Mount{Type: shoalpb.Mount_TYPE_TMPFS, Target: target}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := units(v)
			if err != nil {
				return nil, problemf(at, "has an invalid size %q: %v", v, err)
			}
			m.TmpfsSizeBytes = n
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return nil, problemf(at, "has an invalid mode %q: it must be octal, such as 1777", v)
			}
			m.TmpfsMode = uint32(n)
		case "rw", "":
		default:
			return nil, problemf(at, "has option %q: only size and mode are supported", o)
		}
	}
	return m, nil
}

// units parses a byte size such as 64m or 1g.
func units(s string) (int64, error) { return goUnits.RAMInBytes(s) }
