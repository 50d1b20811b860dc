package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

type serviceCreateOptions struct {
	name            string
	replicas        uintValue
	mode            *enumValue
	maxConcurrent   uintValue
	env             envValue
	labels          labelAddValue
	containerLabels labelAddValue
	constraints     constraintValue
	placementPrefs  placementPrefValue
	maxPerNode      uintValue

	containerFlags
	mounts mountValue

	networks     networkFlagValue
	endpointMode *enumValue
	ports        portFlagValue

	update, rollback *updateConfigFlags

	detach bool
	quiet  bool
}

var restartConditions = map[string]shoalpb.RestartPolicy_Condition{
	"none":       shoalpb.RestartPolicy_CONDITION_NONE,
	"on-failure": shoalpb.RestartPolicy_CONDITION_ON_FAILURE,
	"any":        shoalpb.RestartPolicy_CONDITION_ANY,
}

func newServiceCreateCmd(g *globalOptions) *cobra.Command {
	o := &serviceCreateOptions{
		mode:           newEnum("mode", "replicated", "replicated", "global", "replicated-job", "global-job"),
		containerFlags: newContainerFlags(),
		update:         newUpdateConfigFlags("update"),
		rollback:       newUpdateConfigFlags("rollback"),
		endpointMode:   newEnum("endpoint mode", "vip", "vip", "dnsrr"),
	}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new service",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec(cmd, args)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.CreateService, &shoalpb.CreateServiceRequest{Spec: spec})
				if err != nil {
					return err
				}
				id := resp.GetService().GetId()
				fmt.Fprintln(cmd.OutOrStdout(), id)
				if o.detach {
					return nil
				}
				return waitForService(cmd.Context(), c, cmd.OutOrStdout(), id, o.quiet)
			})
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVar(&o.name, "name", "", "Service name (required)")
	f.Var(&o.replicas, "replicas", "Number of tasks (default 1)")
	f.Var(o.mode, "mode", `Service mode ("replicated", "global", "replicated-job", "global-job")`)
	f.Var(&o.maxConcurrent, "max-concurrent", "Number of job tasks to run concurrently (default equal to --replicas)")
	f.VarP(&o.env, "env", "e", "Set environment variables (KEY=VALUE, or KEY to pass the client's value)")
	f.Var(&o.labels, "label", "Service labels (key=value)")
	f.Var(&o.containerLabels, "container-label", "Container labels (key=value)")
	f.Var(&o.constraints, "constraint", "Placement constraints (node.labels.zone==a, node.role!=manager, ...)")
	f.Var(&o.placementPrefs, "placement-pref", "Add a placement preference (spread=node.labels.zone)")
	f.Var(&o.maxPerNode, "replicas-max-per-node", "Maximum number of tasks per node (default 0 = unlimited)")
	o.containerFlags.add(f, true)
	f.Var(&o.mounts, "mount", "Attach a filesystem mount to the service (type=bind|volume|tmpfs,source=…,target=…,…)")
	f.Var(&o.networks, "network", "Network attachments (NETWORK, or name=NETWORK,alias=ALIAS)")
	f.Var(o.endpointMode, "endpoint-mode", `Endpoint mode ("vip", "dnsrr")`)
	f.VarP(&o.ports, "publish", "p", "Publish a port as a node port ([PUBLISHED:]TARGET[/PROTOCOL], or published=P,target=T,protocol=tcp|udp,mode=ingress|host)")
	o.update.add(f)
	o.rollback.add(f)
	f.BoolVarP(&o.detach, "detach", "d", false, "Exit immediately instead of waiting for the service to converge")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

// spec builds the service spec from the command line, refusing
// combinations docker refuses.
func (o *serviceCreateOptions) spec(cmd *cobra.Command, args []string) (*shoalpb.ServiceSpec, error) {
	f := cmd.Flags()
	if o.name == "" {
		return nil, usageErrorf(cmd, "a service name is required: use --name")
	}
	spec := &shoalpb.ServiceSpec{
		Name:   o.name,
		Labels: o.labels.labels,
		Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{
			Image:      args[0],
			Labels:     o.containerLabels.labels,
			Command:    o.entrypoint.words,
			Args:       args[1:],
			Hostname:   o.hostname,
			Env:        o.env.entries,
			Dir:        o.workdir,
			User:       o.user,
			Mounts:     o.mounts.mounts,
			StopSignal: o.stopSignal,
		}},
	}
	if len(spec.Task.Container.Args) == 0 {
		spec.Task.Container.Args = nil
	}
	if f.Changed("stop-grace-period") {
		spec.Task.Container.StopGracePeriodNs = proto.Int64(int64(o.stopGracePeriod.d))
	}
	if err := o.setMode(cmd, spec); err != nil {
		return nil, err
	}
	job := o.mode.value == "replicated-job" || o.mode.value == "global-job"
	if job && (o.update.changed(f) || o.rollback.changed(f)) {
		return nil, usageErrorf(cmd, "--mode %s: jobs have no update or rollback config (--update-* and --rollback-* flags)", o.mode.value)
	}
	spec.Update = o.update.apply(f, nil)
	spec.Rollback = o.rollback.apply(f, nil)
	hc, err := o.healthcheck(cmd)
	if err != nil {
		return nil, err
	}
	spec.Task.Container.Healthcheck = hc
	spec.Task.Restart = o.restartPolicy(cmd, o.mode.value == "replicated-job" || o.mode.value == "global-job")
	if o.reserveCPU.nano != 0 || o.reserveMemory.bytes != 0 || o.limitCPU.nano != 0 || o.limitMemory.bytes != 0 {
		r := &shoalpb.ResourceRequirements{}
		if o.limitCPU.nano != 0 || o.limitMemory.bytes != 0 {
			r.Limits = &shoalpb.Resources{NanoCpus: o.limitCPU.nano, MemoryBytes: o.limitMemory.bytes}
		}
		if o.reserveCPU.nano != 0 || o.reserveMemory.bytes != 0 {
			r.Reservations = &shoalpb.Resources{NanoCpus: o.reserveCPU.nano, MemoryBytes: o.reserveMemory.bytes}
		}
		spec.Task.Resources = r
	}
	spec.Task.Networks = o.networks.attachments
	spec.Endpoint = endpointSpec(o.endpointMode, f.Changed("endpoint-mode"), o.ports.ports)
	if len(o.constraints.exprs) > 0 || len(o.placementPrefs.prefs) > 0 || o.maxPerNode.v > 0 {
		spec.Task.Placement = &shoalpb.Placement{
			Constraints: o.constraints.exprs,
			Preferences: o.placementPrefs.prefs,
			MaxReplicas: o.maxPerNode.v,
		}
	}
	return spec, nil
}

func (o *serviceCreateOptions) setMode(cmd *cobra.Command, spec *shoalpb.ServiceSpec) error {
	f := cmd.Flags()
	mode := o.mode.value
	if f.Changed("replicas") && (mode == "global" || mode == "global-job") {
		return usageErrorf(cmd, "--replicas %d: replicas can only be used with replicated or replicated-job mode", o.replicas.v)
	}
	if f.Changed("max-concurrent") && mode != "replicated-job" {
		return usageErrorf(cmd, "--max-concurrent %d: max-concurrent can only be used with replicated-job mode", o.maxConcurrent.v)
	}
	if f.Changed("replicas-max-per-node") && (mode == "global" || mode == "global-job") {
		return usageErrorf(cmd, "--replicas-max-per-node %d: replicas-max-per-node can only be used with replicated or replicated-job mode", o.maxPerNode.v)
	}
	switch mode {
	case "replicated":
		replicas := uint64(1)
		if f.Changed("replicas") {
			replicas = o.replicas.v
		}
		spec.Mode = &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: replicas}}
	case "global":
		spec.Mode = &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}
	case "replicated-job":
		j := &shoalpb.ReplicatedJob{TotalCompletions: o.replicas.v, MaxConcurrent: o.replicas.v}
		if f.Changed("max-concurrent") {
			j.MaxConcurrent = o.maxConcurrent.v
		}
		spec.Mode = &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: j}
	case "global-job":
		spec.Mode = &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}
	}
	return nil
}

// healthcheck returns the health config the flags ask for, or nil to keep
// the image's.
func (o *serviceCreateOptions) healthcheck(cmd *cobra.Command) (*shoalpb.HealthConfig, error) {
	f := cmd.Flags()
	changed := false
	for _, name := range []string{"health-cmd", "health-interval", "health-timeout", "health-retries", "health-start-period"} {
		changed = changed || f.Changed(name)
	}
	if o.noHealthcheck {
		if changed {
			return nil, usageErrorf(cmd, "--no-healthcheck conflicts with --health-* options")
		}
		return &shoalpb.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !changed {
		return nil, nil
	}
	if o.healthRetries.v > 1<<31-1 {
		return nil, usageErrorf(cmd, "invalid --health-retries %d: too large", o.healthRetries.v)
	}
	hc := &shoalpb.HealthConfig{
		IntervalNs:    int64(o.healthInterval.d),
		TimeoutNs:     int64(o.healthTimeout.d),
		Retries:       int32(o.healthRetries.v),
		StartPeriodNs: int64(o.healthStartPeriod.d),
	}
	if o.healthCmd != "" {
		hc.Test = []string{"CMD-SHELL", o.healthCmd}
	}
	return hc, nil
}

// restartPolicy returns the restart policy the flags ask for, or nil for
// the cluster's default. A job given restart flags without a condition
// restarts on failure, as jobs do by default.
func (o *serviceCreateOptions) restartPolicy(cmd *cobra.Command, job bool) *shoalpb.RestartPolicy {
	f := cmd.Flags()
	if !f.Changed("restart-condition") && !f.Changed("restart-delay") && !f.Changed("restart-max-attempts") && !f.Changed("restart-window") {
		return nil
	}
	p := &shoalpb.RestartPolicy{MaxAttempts: o.restartMaxAttempts.v, WindowNs: int64(o.restartWindow.d)}
	switch {
	case f.Changed("restart-condition"):
		p.Condition = restartConditions[o.restartCondition.value]
	case job:
		p.Condition = shoalpb.RestartPolicy_CONDITION_ON_FAILURE
	}
	if f.Changed("restart-delay") {
		p.DelayNs = proto.Int64(int64(o.restartDelay.d))
	}
	return p
}
