package compose

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Labels a stack puts on what it makes, as docker stack deploy does.
const (
	// LabelNamespace marks the services and networks of a stack (and the
	// containers and volumes of its services) with the stack's name.
	LabelNamespace = "com.docker.stack.namespace"
	// LabelImage keeps the image a service's compose file names.
	LabelImage = "com.docker.stack.image"
)

// converter turns a loaded compose project into a stack spec.
type converter struct {
	stack   string
	project *types.Project
	// norm is the project name compose-go was given, which it prefixes
	// the default names of networks and volumes with.
	norm string
}

// Scope returns the full name of a stack object: <stack>_<name>.
func Scope(stack, name string) string { return stack + "_" + name }

func convert(stack string, p *types.Project) (*shoalpb.StackSpec, error) {
	if len(p.Services) == 0 {
		return nil, problemf("", "defines no services: a stack needs at least one")
	}
	c := &converter{stack: stack, project: p, norm: loader.NormalizeProjectName(stack)}
	spec := &shoalpb.StackSpec{Name: stack}
	used := map[string]bool{}
	for _, name := range sortedKeys(p.Services) {
		svc, err := c.service(p.Services[name])
		if err != nil {
			return nil, err
		}
		spec.Services = append(spec.Services, svc)
		for _, key := range networkKeys(p.Services[name]) {
			used[key] = true
		}
	}
	for _, key := range sortedKeys(used) {
		n, err := c.network(key)
		if err != nil {
			return nil, err
		}
		if n != nil {
			spec.Networks = append(spec.Networks, n)
		}
	}
	return spec, nil
}

// resourceName is the name of a top-level network or volume: its explicit
// name, the key for an external one, <stack>_<key> otherwise. compose-go
// names unnamed ones <project>_<key> itself; that is recognised and
// replaced, as the project name is the stack name normalised.
func (c *converter) resourceName(key, name string, external bool) string {
	if external {
		if name == "" {
			return key
		}
		return name
	}
	if name == "" || name == c.norm+"_"+key {
		return Scope(c.stack, key)
	}
	return name
}

func stackLabels(stack string, labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[LabelNamespace] = stack
	return out
}

// network returns the spec of a network the stack creates, or nil for an
// external one.
func (c *converter) network(key string) (*shoalpb.NetworkSpec, error) {
	cfg, ok := c.project.Networks[key]
	if !ok {
		// compose-go declares the default network when a service uses it.
		cfg = types.NetworkConfig{}
	}
	if cfg.External {
		return nil, nil
	}
	path := "networks." + key
	if d := cfg.Driver; d != "" && d != "overlay" {
		return nil, problemf(path+".driver", "must be overlay (got %q): stacks run on overlay networks only", d)
	}
	n := &shoalpb.NetworkSpec{
		Name:       c.resourceName(key, cfg.Name, false),
		Labels:     stackLabels(c.stack, cfg.Labels),
		Driver:     "overlay",
		Attachable: cfg.Attachable,
		Internal:   cfg.Internal,
	}
	switch len(cfg.Ipam.Config) {
	case 0:
	case 1:
		pool := cfg.Ipam.Config[0]
		n.Ipam = &shoalpb.IPAMConfig{Subnet: pool.Subnet, Gateway: pool.Gateway, IpRange: pool.IPRange}
	default:
		return nil, problemf(path+".ipam.config", "has %d entries: an overlay network has one subnet", len(cfg.Ipam.Config))
	}
	return n, nil
}

func (c *converter) service(s types.ServiceConfig) (*shoalpb.ServiceSpec, error) {
	path := "services." + s.Name
	if s.Image == "" {
		return nil, problemf(path+".image", "is required (a stack does not build images: build it, and name it in image)")
	}
	labels := map[string]string{LabelImage: s.Image}
	var deploy types.DeployConfig
	if s.Deploy != nil {
		deploy = *s.Deploy
		for k, v := range deploy.Labels {
			labels[k] = v
		}
	}
	labels[LabelNamespace] = c.stack
	spec := &shoalpb.ServiceSpec{
		Name:   Scope(c.stack, s.Name),
		Labels: labels,
		Task: &shoalpb.TaskSpec{
			Container: &shoalpb.ContainerSpec{
				Image:      s.Image,
				Labels:     stackLabels(c.stack, s.Labels),
				Command:    nonEmpty(s.Entrypoint),
				Args:       nonEmpty(s.Command),
				Hostname:   s.Hostname,
				Env:        env(s.Environment),
				Dir:        s.WorkingDir,
				User:       s.User,
				StopSignal: s.StopSignal,
			},
		},
	}
	ct := spec.Task.Container
	if s.StopGracePeriod != nil {
		ct.StopGracePeriodNs = proto.Int64(int64(*s.StopGracePeriod))
	}
	ct.Healthcheck = healthcheck(s.HealthCheck)
	var err error
	if ct.Mounts, err = c.mounts(path, s); err != nil {
		return nil, err
	}
	if spec.Task.Networks, err = c.attachments(s); err != nil {
		return nil, err
	}
	if spec.Endpoint, err = endpoint(path, deploy.EndpointMode, s.Ports); err != nil {
		return nil, err
	}
	if spec.DependsOn, err = c.dependencies(path, s); err != nil {
		return nil, err
	}
	if err := c.deploy(path+".deploy", spec, deploy); err != nil {
		return nil, err
	}
	return spec, nil
}

func nonEmpty(words []string) []string {
	if len(words) == 0 {
		return nil
	}
	return slices.Clone(words)
}

// env turns an environment mapping into sorted KEY=VALUE entries; a key
// with no value (not set anywhere) stays a bare KEY.
func env(m types.MappingWithEquals) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v == nil {
			out = append(out, k)
		} else {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func healthcheck(h *types.HealthCheckConfig) *shoalpb.HealthConfig {
	if h == nil {
		return nil
	}
	if h.Disable {
		return &shoalpb.HealthConfig{Test: []string{"NONE"}}
	}
	out := &shoalpb.HealthConfig{Test: nonEmpty(h.Test)}
	if h.Interval != nil {
		out.IntervalNs = int64(*h.Interval)
	}
	if h.Timeout != nil {
		out.TimeoutNs = int64(*h.Timeout)
	}
	if h.StartPeriod != nil {
		out.StartPeriodNs = int64(*h.StartPeriod)
	}
	if h.Retries != nil {
		out.Retries = int32(min(*h.Retries, 1<<31-1))
	}
	return out
}

// networkKeys are the top-level networks a service joins: those it lists,
// none with network_mode: none, the default network otherwise (any other
// network_mode is ignored, as docker stack deploy ignores it).
func networkKeys(s types.ServiceConfig) []string {
	switch {
	case s.NetworkMode == "none":
		return nil
	case len(s.Networks) == 0:
		return []string{"default"}
	}
	return sortedKeys(s.Networks)
}

// attachments are the networks a service joins, by name: the stack's
// (<stack>_<key>) and external ones. As docker does, the service's short
// name is an alias on each.
func (c *converter) attachments(s types.ServiceConfig) ([]*shoalpb.NetworkAttachmentConfig, error) {
	var out []*shoalpb.NetworkAttachmentConfig
	for _, key := range networkKeys(s) {
		cfg := c.project.Networks[key]
		a := &shoalpb.NetworkAttachmentConfig{Target: c.resourceName(key, cfg.Name, bool(cfg.External))}
		if n := s.Networks[key]; n != nil {
			a.Aliases = slices.Clone(n.Aliases)
		}
		if !slices.Contains(a.Aliases, s.Name) {
			a.Aliases = append(a.Aliases, s.Name)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out, nil
}

// endpoint converts endpoint_mode and ports.
func endpoint(path, mode string, ports []types.ServicePortConfig) (*shoalpb.EndpointSpec, error) {
	e := &shoalpb.EndpointSpec{}
	switch strings.ToLower(mode) {
	case "", "vip":
	case "dnsrr":
		e.Mode = shoalpb.EndpointSpec_MODE_DNSRR
	default:
		return nil, problemf(path+".deploy.endpoint_mode", "must be vip or dnsrr (got %q)", mode)
	}
	for i, p := range ports {
		at := fmt.Sprintf("%s.ports[%d]", path, i)
		pc := &shoalpb.PortConfig{Name: p.Name, TargetPort: p.Target}
		switch strings.ToLower(p.Protocol) {
		case "", "tcp":
		case "udp":
			pc.Protocol = shoalpb.PortConfig_PROTOCOL_UDP
		default:
			return nil, problemf(at+".protocol", "must be tcp or udp (got %q)", p.Protocol)
		}
		switch strings.ToLower(p.Mode) {
		case "", "ingress":
		case "host":
			pc.PublishMode = shoalpb.PortConfig_PUBLISH_MODE_HOST
		default:
			return nil, problemf(at+".mode", "must be ingress or host (got %q)", p.Mode)
		}
		if p.Target == 0 || p.Target > 65535 {
			return nil, problemf(at+".target", "must be a port number from 1 to 65535 (got %d)", p.Target)
		}
		if p.Published != "" {
			lo, hi, isRange := strings.Cut(p.Published, "-")
			if isRange && lo != hi {
				return nil, problemf(at+".published", "is a range (%s): publish one port per entry", p.Published)
			}
			n, err := strconv.ParseUint(lo, 10, 16)
			if err != nil || n == 0 {
				return nil, problemf(at+".published", "must be a port number from 1 to 65535 (got %q)", p.Published)
			}
			pc.PublishedPort = uint32(n)
		}
		e.Ports = append(e.Ports, pc)
	}
	sort.SliceStable(e.Ports, func(i, j int) bool {
		a, b := e.Ports[i], e.Ports[j]
		if a.PublishedPort != b.PublishedPort {
			return a.PublishedPort < b.PublishedPort
		}
		if a.TargetPort != b.TargetPort {
			return a.TargetPort < b.TargetPort
		}
		return a.Protocol < b.Protocol
	})
	if e.Mode == shoalpb.EndpointSpec_MODE_VIP && len(e.Ports) == 0 {
		return nil, nil
	}
	return e, nil
}

var conditions = map[string]shoalpb.ServiceDependency_Condition{
	types.ServiceConditionStarted:               shoalpb.ServiceDependency_CONDITION_STARTED,
	types.ServiceConditionHealthy:               shoalpb.ServiceDependency_CONDITION_HEALTHY,
	types.ServiceConditionCompletedSuccessfully: shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY,
}

// dependencies converts depends_on, by full service name. Dependencies the
// loader implies from links, volumes_from or network_mode: service:x are
// left out: those keys are not honoured by a stack.
func (c *converter) dependencies(path string, s types.ServiceConfig) ([]*shoalpb.ServiceDependency, error) {
	var out []*shoalpb.ServiceDependency
	for _, dep := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[dep]
		if implied(s, dep, d) {
			continue
		}
		target, ok := c.project.Services[dep]
		if !ok {
			// Not required and not in the project (compose-go refuses a
			// required one): nothing to wait for.
			continue
		}
		at := path + ".depends_on." + dep
		cond, ok := conditions[d.Condition]
		if !ok {
			return nil, problemf(at+".condition", "must be service_started, service_healthy or service_completed_successfully (got %q)", d.Condition)
		}
		if cond == shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY && !isJobMode(target) {
			return nil, problemf(at+".condition", "service_completed_successfully needs %s to be a job (deploy.mode replicated-job or global-job): tasks of other services are restarted rather than complete", dep)
		}
		out = append(out, &shoalpb.ServiceDependency{Service: Scope(c.stack, dep), Condition: cond})
	}
	return out, nil
}

func isJobMode(s types.ServiceConfig) bool {
	return s.Deploy != nil && (s.Deploy.Mode == "replicated-job" || s.Deploy.Mode == "global-job")
}

// implied reports whether compose-go added the dependency on dep because
// of links, volumes_from or a service: namespace, with the form it gives
// such dependencies.
func implied(s types.ServiceConfig, dep string, d types.ServiceDependency) bool {
	if d.Condition != types.ServiceConditionStarted || !d.Required {
		return false
	}
	if d.Restart {
		for _, l := range s.Links {
			if name, _, _ := strings.Cut(l, ":"); name == dep {
				return true
			}
		}
		for _, ns := range []string{s.NetworkMode, s.Ipc, s.Pid, s.Uts, s.Cgroup} {
			if ns == types.ServicePrefix+dep {
				return true
			}
		}
	}
	for _, v := range s.VolumesFrom {
		if name, _, _ := strings.Cut(v, ":"); name == dep {
			return true
		}
	}
	return false
}

// nanoCPUs converts a CPU count exactly as written: compose-go holds it
// as a float32, whose shortest decimal form is what the file said.
func nanoCPUs(v types.NanoCPUs) int64 {
	if v == 0 {
		return 0
	}
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(float64(v), 'f', -1, 32))
	if !ok {
		return int64(float64(v) * 1e9)
	}
	r.Mul(r, big.NewRat(1e9, 1))
	n, _ := r.Float64()
	return int64(n + 0.5)
}

func durationNs(d *types.Duration) *int64 {
	if d == nil {
		return nil
	}
	return proto.Int64(int64(time.Duration(*d)))
}
