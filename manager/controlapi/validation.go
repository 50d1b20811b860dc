package controlapi

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shoal-project/shoal/manager/constraint"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Limits on service specs. They follow docker's.
const (
	MaxServiceNameLength = 63
	// MinNanoCPUs is the smallest CPU reservation or limit (0.001 cores).
	MinNanoCPUs = 1_000_000
	// MinMemoryBytes is the smallest memory reservation or limit.
	MinMemoryBytes = 4 << 20
	// MinHealthDuration is the smallest health check interval, timeout or
	// start period.
	MinHealthDuration = time.Millisecond
)

var (
	serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)
	volumeNameRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

var bindPropagations = map[string]bool{
	"private": true, "rprivate": true, "shared": true, "rshared": true, "slave": true, "rslave": true,
}

// validateServiceSpec checks a spec whose mode has been defaulted. Every
// error is InvalidArgument and names the offending value.
func validateServiceSpec(spec *shoalpb.ServiceSpec) error {
	if spec == nil {
		return invalid("service spec is required")
	}
	if err := validateServiceName(spec.Name); err != nil {
		return err
	}
	if err := validateLabels("service label", spec.Labels); err != nil {
		return err
	}
	if err := validateMode(spec); err != nil {
		return err
	}
	if err := validateDependsOn(spec); err != nil {
		return err
	}
	if err := validateUpdateConfigs(spec); err != nil {
		return err
	}
	if err := validateTaskSpec(spec.GetTask(), isJobSpec(spec)); err != nil {
		return err
	}
	return validateEndpointSpec(spec)
}

// validateDependsOn checks the services spec waits for: named, each once,
// not itself, with a known condition. Whether they exist is checked where
// the services there will be are known (DeployStack).
func validateDependsOn(spec *shoalpb.ServiceSpec) error {
	seen := map[string]bool{}
	for _, d := range spec.GetDependsOn() {
		name := d.GetService()
		if name == "" {
			return invalid("invalid dependency: the name of the service depended on is required")
		}
		if _, ok := shoalpb.ServiceDependency_Condition_name[int32(d.GetCondition())]; !ok {
			return invalid("invalid condition %d for the dependency on service %s", d.GetCondition(), name)
		}
		key := strings.ToLower(name)
		if key == strings.ToLower(spec.GetName()) {
			return invalid("invalid dependency on service %s: a service cannot depend on itself", name)
		}
		if seen[key] {
			return invalid("invalid dependency on service %s: it is given twice", name)
		}
		seen[key] = true
	}
	return nil
}

func validateServiceName(name string) error {
	if name == "" {
		return invalid("service name is required")
	}
	if len(name) > MaxServiceNameLength || !serviceNameRE.MatchString(name) {
		return invalid("invalid service name %q: names must be at most %d characters of letters, digits, '.', '_' and '-', starting and ending with a letter or digit", name, MaxServiceNameLength)
	}
	return nil
}

func validateLabels(what string, labels map[string]string) error {
	for k := range labels {
		if strings.TrimSpace(k) == "" {
			return invalid("invalid %s %q: the key is empty", what, k+"="+labels[k])
		}
	}
	return nil
}

func validateMode(spec *shoalpb.ServiceSpec) error {
	switch spec.Mode.(type) {
	case *shoalpb.ServiceSpec_Replicated, *shoalpb.ServiceSpec_ReplicatedJob:
	case *shoalpb.ServiceSpec_Global, *shoalpb.ServiceSpec_GlobalJob:
		if m := spec.GetTask().GetPlacement().GetMaxReplicas(); m > 0 {
			return invalid("invalid max replicas per node %d: it can only be used with replicated or replicated-job mode, not %s", m, modeName(spec))
		}
	default:
		return invalid("service mode is required")
	}
	if isJobSpec(spec) && spec.GetTask().GetRestart() != nil &&
		spec.GetTask().GetRestart().GetCondition() == shoalpb.RestartPolicy_CONDITION_ANY {
		return invalid("invalid restart condition \"any\" for %s mode: jobs may only restart on-failure or none", modeName(spec))
	}
	return nil
}

func validateTaskSpec(task *shoalpb.TaskSpec, job bool) error {
	c := task.GetContainer()
	if c == nil || c.Image == "" {
		return invalid("image is required")
	}
	if strings.IndexFunc(c.Image, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return invalid("invalid image %q: it contains white space", c.Image)
	}
	if err := validateLabels("container label", c.Labels); err != nil {
		return err
	}
	for _, e := range c.Env {
		if k, _, _ := strings.Cut(e, "="); strings.TrimSpace(k) == "" {
			return invalid("invalid environment variable %q: must be KEY=VALUE or KEY", e)
		}
	}
	if g := c.StopGracePeriodNs; g != nil && *g < 0 {
		return invalid("invalid stop grace period %s: must not be negative", time.Duration(*g))
	}
	if err := validateHealth(c.Healthcheck); err != nil {
		return err
	}
	if err := validateMounts(c.Mounts); err != nil {
		return err
	}
	if err := validateResources(task.GetResources()); err != nil {
		return err
	}
	if err := validateRestart(task.GetRestart()); err != nil {
		return err
	}
	return validatePlacement(task.GetPlacement())
}

func validateHealth(h *shoalpb.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		what string
		ns   int64
	}{{"interval", h.IntervalNs}, {"timeout", h.TimeoutNs}, {"start period", h.StartPeriodNs}} {
		if d.ns != 0 && time.Duration(d.ns) < MinHealthDuration {
			return invalid("invalid health check %s %s: must be at least %s (or 0 for the default)", d.what, time.Duration(d.ns), MinHealthDuration)
		}
	}
	if h.Retries < 0 {
		return invalid("invalid health check retries %d: must not be negative", h.Retries)
	}
	if len(h.Test) == 0 {
		return nil
	}
	switch h.Test[0] {
	case "NONE":
	case "CMD", "CMD-SHELL":
		if len(h.Test) < 2 {
			return invalid("invalid health check test %q: %s needs a command", h.Test, h.Test[0])
		}
	default:
		return invalid("invalid health check test %q: must start with NONE, CMD or CMD-SHELL", h.Test)
	}
	return nil
}

func validateMounts(mounts []*shoalpb.Mount) error {
	targets := map[string]bool{}
	for _, m := range mounts {
		if _, ok := shoalpb.Mount_Type_name[int32(m.Type)]; !ok {
			return invalid("invalid mount type %d", m.Type)
		}
		kind := mountTypeName(m.Type)
		if m.Target == "" {
			return invalid("invalid %s mount: target is required", kind)
		}
		if !path.IsAbs(m.Target) {
			return invalid("invalid mount target %q: must be an absolute path", m.Target)
		}
		t := path.Clean(m.Target)
		if targets[t] {
			return invalid("invalid mount target %q: duplicate mount point", m.Target)
		}
		targets[t] = true
		switch m.Type {
		case shoalpb.Mount_TYPE_BIND:
			if m.Source == "" {
				return invalid("invalid bind mount at %q: source is required", m.Target)
			}
			if !path.IsAbs(m.Source) {
				return invalid("invalid bind mount source %q: must be an absolute path", m.Source)
			}
			if m.BindPropagation != "" && !bindPropagations[m.BindPropagation] {
				return invalid("invalid bind propagation %q: must be private, rprivate, shared, rshared, slave or rslave", m.BindPropagation)
			}
		case shoalpb.Mount_TYPE_VOLUME:
			if m.Source != "" && !volumeNameRE.MatchString(m.Source) {
				return invalid("invalid volume name %q: must match %s, or be empty for an anonymous volume", m.Source, volumeNameRE)
			}
			if err := validateLabels("volume label", m.VolumeLabels); err != nil {
				return err
			}
		case shoalpb.Mount_TYPE_TMPFS:
			if m.Source != "" {
				return invalid("invalid tmpfs mount source %q: a tmpfs mount takes no source", m.Source)
			}
			if m.TmpfsSizeBytes < 0 {
				return invalid("invalid tmpfs size %d: must not be negative", m.TmpfsSizeBytes)
			}
			if m.TmpfsMode > 0o7777 {
				return invalid("invalid tmpfs mode %#o: must be a file mode", m.TmpfsMode)
			}
		}
		if m.Type != shoalpb.Mount_TYPE_BIND && m.BindPropagation != "" {
			return invalid("invalid %s mount at %q: bind propagation %q is for bind mounts only", kind, m.Target, m.BindPropagation)
		}
		if m.Type != shoalpb.Mount_TYPE_VOLUME && (m.VolumeNocopy || len(m.VolumeLabels) > 0 || m.VolumeDriver != "" || len(m.VolumeDriverOptions) > 0) {
			return invalid("invalid %s mount at %q: volume options are for volume mounts only", kind, m.Target)
		}
		if m.Type != shoalpb.Mount_TYPE_TMPFS && (m.TmpfsSizeBytes != 0 || m.TmpfsMode != 0) {
			return invalid("invalid %s mount at %q: tmpfs options are for tmpfs mounts only", kind, m.Target)
		}
	}
	return nil
}

func mountTypeName(t shoalpb.Mount_Type) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "TYPE_"))
}

func validateResources(r *shoalpb.ResourceRequirements) error {
	if r == nil {
		return nil
	}
	for _, x := range []struct {
		what string
		res  *shoalpb.Resources
	}{{"reservation", r.Reservations}, {"limit", r.Limits}} {
		if cpu := x.res.GetNanoCpus(); cpu != 0 && cpu < MinNanoCPUs {
			return invalid("invalid CPU %s %s: must be at least 0.001", x.what, formatCPUs(cpu))
		}
		if mem := x.res.GetMemoryBytes(); mem != 0 && mem < MinMemoryBytes {
			return invalid("invalid memory %s %d bytes: must be at least 4MiB", x.what, mem)
		}
	}
	res, lim := r.Reservations, r.Limits
	if lc, rc := lim.GetNanoCpus(), res.GetNanoCpus(); lc != 0 && rc > lc {
		return invalid("invalid CPU limit %s: it is below the reservation %s", formatCPUs(lc), formatCPUs(rc))
	}
	if lm, rm := lim.GetMemoryBytes(), res.GetMemoryBytes(); lm != 0 && rm > lm {
		return invalid("invalid memory limit %d bytes: it is below the reservation %d bytes", lm, rm)
	}
	return nil
}

// formatCPUs words nano CPUs as cores ("0.5", "-2").
func formatCPUs(n int64) string {
	return strconv.FormatFloat(float64(n)/1e9, 'f', -1, 64)
}

func validateRestart(p *shoalpb.RestartPolicy) error {
	if p == nil {
		return nil
	}
	if _, ok := shoalpb.RestartPolicy_Condition_name[int32(p.Condition)]; !ok {
		return invalid("invalid restart condition %d", p.Condition)
	}
	if p.DelayNs != nil && *p.DelayNs < 0 {
		return invalid("invalid restart delay %s: must not be negative", time.Duration(*p.DelayNs))
	}
	if p.WindowNs < 0 {
		return invalid("invalid restart window %s: must not be negative", time.Duration(p.WindowNs))
	}
	return nil
}

func validatePlacement(p *shoalpb.Placement) error {
	if p == nil {
		return nil
	}
	if err := validateConstraints(p.Constraints); err != nil {
		return err
	}
	for _, pref := range p.Preferences {
		d := pref.GetSpreadDescriptor()
		if strings.TrimSpace(d) == "" || strings.ContainsAny(d, " \t=") {
			return invalid("invalid placement preference spread=%s: the spread descriptor must be a node attribute such as node.labels.zone", d)
		}
	}
	return nil
}

// validateConstraints checks placement constraint expressions with the
// parser the scheduler uses.
func validateConstraints(exprs []string) error {
	if _, err := constraint.Parse(exprs); err != nil {
		return invalid("%v", err)
	}
	return nil
}
