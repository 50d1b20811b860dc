package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// serviceUpdateOptions are the flags of `shoal service update`: each
// changes one part of the service's spec, as docker's do.
type serviceUpdateOptions struct {
	image             string
	args              shellWordsValue
	envAdd            envValue
	envRm             listValue
	labelAdd          labelAddValue
	labelRm           labelRmValue
	containerLabelAdd labelAddValue
	containerLabelRm  labelRmValue
	constraintAdd     constraintValue
	constraintRm      listValue
	placementPrefAdd  placementPrefValue
	placementPrefRm   placementPrefValue
	replicas          uintValue
	maxPerNode        uintValue
	mountAdd          mountValue
	mountRm           listValue

	containerFlags

	update, rollback *updateConfigFlags
	endpoint         *endpointUpdateFlags

	force        bool
	rollbackSpec bool
	detach       bool
	quiet        bool
}

func newServiceUpdateCmd(g *globalOptions) *cobra.Command {
	o := &serviceUpdateOptions{
		envRm:          listValue{what: "environment variable"},
		constraintRm:   listValue{what: "constraint"},
		mountRm:        listValue{what: "mount target"},
		containerFlags: newContainerFlags(),
		update:         newUpdateConfigFlags("update"),
		rollback:       newUpdateConfigFlags("rollback"),
		endpoint:       newEndpointUpdateFlags(),
	}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Update a service",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.rollbackSpec {
				if err := onlyWithRollback(cmd); err != nil {
					return err
				}
			}
			return g.withClient(func(c *client) error {
				svc, err := o.send(cmd, c, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				if o.detach {
					return nil
				}
				return waitAfterUpdate(cmd, c, svc, o.quiet, o.rollbackSpec)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "Service image tag")
	f.Var(&o.args, "args", "Service command args")
	f.Var(&o.envAdd, "env-add", "Add or update an environment variable")
	f.Var(&o.envRm, "env-rm", "Remove an environment variable")
	f.Var(&o.labelAdd, "label-add", "Add or update a service label")
	f.Var(&o.labelRm, "label-rm", "Remove a label by its key")
	f.Var(&o.containerLabelAdd, "container-label-add", "Add or update a container label")
	f.Var(&o.containerLabelRm, "container-label-rm", "Remove a container label by its key")
	f.Var(&o.constraintAdd, "constraint-add", "Add or update a placement constraint")
	f.Var(&o.constraintRm, "constraint-rm", "Remove a constraint")
	f.Var(&o.placementPrefAdd, "placement-pref-add", "Add a placement preference")
	f.Var(&o.placementPrefRm, "placement-pref-rm", "Remove a placement preference")
	f.Var(&o.replicas, "replicas", "Number of tasks")
	f.Var(&o.maxPerNode, "replicas-max-per-node", "Maximum number of tasks per node (0 = unlimited)")
	f.Var(&o.mountAdd, "mount-add", "Add or update a mount on a service")
	f.Var(&o.mountRm, "mount-rm", "Remove a mount by its target path")
	o.containerFlags.add(f, false)
	o.update.add(f)
	o.rollback.add(f)
	o.endpoint.add(f)
	f.BoolVar(&o.force, "force", false, "Force update even if no changes require it")
	f.BoolVar(&o.rollbackSpec, "rollback", false, "Rollback to previous specification")
	f.BoolVarP(&o.detach, "detach", "d", false, "Exit immediately instead of waiting for the service to converge")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

func newServiceRollbackCmd(g *globalOptions) *cobra.Command {
	var detach, quiet bool
	cmd := &cobra.Command{
		Use:   "rollback [OPTIONS] SERVICE",
		Short: "Revert changes to a service's configuration",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client) error {
				svc, err := rollbackService(cmd, c, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), args[0])
				if detach {
					return nil
				}
				return waitAfterUpdate(cmd, c, svc, quiet, true)
			})
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "Exit immediately instead of waiting for the service to converge")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

// onlyWithRollback refuses --rollback with flags that change the spec, as
// docker does.
func onlyWithRollback(cmd *cobra.Command) error {
	var others []string
	inherited := cmd.InheritedFlags()
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch {
		case f.Name == "rollback" || f.Name == "detach" || f.Name == "quiet" || inherited.Lookup(f.Name) != nil:
		default:
			others = append(others, "--"+f.Name)
		}
	})
	if len(others) > 0 {
		return usageErrorf(cmd, "other flags may not be combined with --rollback (%s)", strings.Join(others, ", "))
	}
	return nil
}

// send reads the service, applies the flags and writes it back at the
// version read, reading again when someone else (the rolling updater
// recording progress, say) changed it in between.
func (o *serviceUpdateOptions) send(cmd *cobra.Command, c *client, ref string) (*shoalpb.Service, error) {
	if o.rollbackSpec {
		return rollbackService(cmd, c, ref)
	}
	for attempt := 1; ; attempt++ {
		resp, err := call(cmd.Context(), c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: ref})
		if err != nil {
			return nil, err
		}
		cur := resp.GetService()
		spec := proto.Clone(cur.GetSpec()).(*shoalpb.ServiceSpec)
		if err := o.apply(cmd, spec); err != nil {
			return nil, err
		}
		if err := o.endpoint.apply(cmd, c, spec); err != nil {
			return nil, err
		}
		up, err := call(cmd.Context(), c, c.control.UpdateService, &shoalpb.UpdateServiceRequest{
			ServiceRef: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: spec,
		})
		var de *daemonError
		if errors.As(err, &de) && de.code == codes.Aborted && attempt < updateRetries {
			continue
		}
		return up.GetService(), err
	}
}

// rollbackService asks for the service's previous spec, reading the
// version again if the service changed meanwhile.
func rollbackService(cmd *cobra.Command, c *client, ref string) (*shoalpb.Service, error) {
	for attempt := 1; ; attempt++ {
		resp, err := call(cmd.Context(), c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: ref})
		if err != nil {
			return nil, err
		}
		cur := resp.GetService()
		up, err := call(cmd.Context(), c, c.control.UpdateService, &shoalpb.UpdateServiceRequest{
			ServiceRef: cur.GetId(), Version: cur.GetMeta().GetVersion(), Rollback: true,
		})
		var de *daemonError
		if errors.As(err, &de) && de.code == codes.Aborted && attempt < updateRetries {
			continue
		}
		return up.GetService(), err
	}
}

// apply changes spec as the flags ask. It refuses flags the service's
// mode does not take; nothing has been written then.
func (o *serviceUpdateOptions) apply(cmd *cobra.Command, spec *shoalpb.ServiceSpec) error {
	f := cmd.Flags()
	if spec.Task == nil {
		spec.Task = &shoalpb.TaskSpec{}
	}
	task := spec.Task
	if task.Container == nil {
		task.Container = &shoalpb.ContainerSpec{}
	}
	ctr := task.Container
	job := spec.GetReplicatedJob() != nil || spec.GetGlobalJob() != nil

	if f.Changed("replicas") {
		switch {
		case spec.GetReplicated() != nil:
			spec.GetReplicated().Replicas = o.replicas.v
		case spec.GetReplicatedJob() != nil:
			spec.GetReplicatedJob().TotalCompletions = o.replicas.v
		default:
			return usageErrorf(cmd, "--replicas %d: replicas can only be used with replicated or replicated-job mode", o.replicas.v)
		}
	}
	if f.Changed("replicas-max-per-node") && spec.GetReplicated() == nil && spec.GetReplicatedJob() == nil {
		return usageErrorf(cmd, "--replicas-max-per-node %d: replicas-max-per-node can only be used with replicated or replicated-job mode", o.maxPerNode.v)
	}
	if job && (o.update.changed(f) || o.rollback.changed(f)) {
		return usageErrorf(cmd, "service %s is a job: jobs have no update or rollback config (--update-* and --rollback-* flags)", spec.GetName())
	}

	if f.Changed("image") {
		ctr.Image = o.image
	}
	if f.Changed("args") {
		ctr.Args = o.args.words
	}
	if f.Changed("entrypoint") {
		ctr.Command = o.entrypoint.words
	}
	for _, s := range []struct {
		name string
		dst  *string
		val  string
	}{{"workdir", &ctr.Dir, o.workdir}, {"user", &ctr.User, o.user}, {"hostname", &ctr.Hostname, o.hostname}, {"stop-signal", &ctr.StopSignal, o.stopSignal}} {
		if f.Changed(s.name) {
			*s.dst = s.val
		}
	}
	if f.Changed("stop-grace-period") {
		ctr.StopGracePeriodNs = proto.Int64(int64(o.stopGracePeriod.d))
	}
	ctr.Env = updateEnv(ctr.Env, o.envRm.items, o.envAdd.entries)
	spec.Labels = updateLabels(spec.Labels, o.labelRm.keys, o.labelAdd.labels)
	ctr.Labels = updateLabels(ctr.Labels, o.containerLabelRm.keys, o.containerLabelAdd.labels)
	ctr.Mounts = updateMounts(ctr.Mounts, o.mountRm.items, o.mountAdd.mounts)

	if f.Changed("constraint-add") || f.Changed("constraint-rm") || f.Changed("placement-pref-add") || f.Changed("placement-pref-rm") || f.Changed("replicas-max-per-node") {
		if task.Placement == nil {
			task.Placement = &shoalpb.Placement{}
		}
		p := task.Placement
		p.Constraints = slices.DeleteFunc(p.Constraints, func(c string) bool {
			return o.constraintRm.has(c) || slices.Contains(o.constraintAdd.exprs, c)
		})
		p.Constraints = append(p.Constraints, o.constraintAdd.exprs...)
		p.Preferences = slices.DeleteFunc(p.Preferences, func(pp *shoalpb.PlacementPreference) bool {
			return slices.ContainsFunc(o.placementPrefRm.prefs, func(r *shoalpb.PlacementPreference) bool { return r.SpreadDescriptor == pp.SpreadDescriptor })
		})
		p.Preferences = append(p.Preferences, o.placementPrefAdd.prefs...)
		if f.Changed("replicas-max-per-node") {
			p.MaxReplicas = o.maxPerNode.v
		}
		if len(p.Constraints) == 0 && len(p.Preferences) == 0 && p.MaxReplicas == 0 {
			task.Placement = nil
		}
	}

	o.applyResources(f, task)
	if err := o.applyHealth(cmd, ctr); err != nil {
		return err
	}
	o.applyRestart(f, task, job)
	spec.Update = o.update.apply(f, spec.Update)
	spec.Rollback = o.rollback.apply(f, spec.Rollback)
	if o.force {
		task.ForceUpdate++
	}
	return nil
}

func (o *serviceUpdateOptions) applyResources(f *pflag.FlagSet, task *shoalpb.TaskSpec) {
	if !f.Changed("reserve-cpu") && !f.Changed("reserve-memory") && !f.Changed("limit-cpu") && !f.Changed("limit-memory") {
		return
	}
	r := task.Resources
	if r == nil {
		r = &shoalpb.ResourceRequirements{}
	}
	set := func(res **shoalpb.Resources, cpuFlag string, cpu cpuValue, memFlag string, mem sizeValue) {
		if !f.Changed(cpuFlag) && !f.Changed(memFlag) {
			return
		}
		if *res == nil {
			*res = &shoalpb.Resources{}
		}
		if f.Changed(cpuFlag) {
			(*res).NanoCpus = cpu.nano
		}
		if f.Changed(memFlag) {
			(*res).MemoryBytes = mem.bytes
		}
		if (*res).NanoCpus == 0 && (*res).MemoryBytes == 0 {
			*res = nil
		}
	}
	set(&r.Reservations, "reserve-cpu", o.reserveCPU, "reserve-memory", o.reserveMemory)
	set(&r.Limits, "limit-cpu", o.limitCPU, "limit-memory", o.limitMemory)
	if r.Reservations == nil && r.Limits == nil {
		r = nil
	}
	task.Resources = r
}

func (o *serviceUpdateOptions) applyHealth(cmd *cobra.Command, ctr *shoalpb.ContainerSpec) error {
	f := cmd.Flags()
	names := []string{"health-cmd", "health-interval", "health-timeout", "health-retries", "health-start-period"}
	changed := slices.ContainsFunc(names, f.Changed)
	if o.noHealthcheck {
		if changed {
			return usageErrorf(cmd, "--no-healthcheck conflicts with --health-* options")
		}
		ctr.Healthcheck = &shoalpb.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if !changed {
		return nil
	}
	if o.healthRetries.v > 1<<31-1 {
		return usageErrorf(cmd, "invalid --health-retries %d: too large", o.healthRetries.v)
	}
	hc := &shoalpb.HealthConfig{}
	if ctr.Healthcheck != nil && !slices.Equal(ctr.Healthcheck.Test, []string{"NONE"}) {
		hc = proto.Clone(ctr.Healthcheck).(*shoalpb.HealthConfig)
	}
	if f.Changed("health-cmd") {
		hc.Test = nil
		if o.healthCmd != "" {
			hc.Test = []string{"CMD-SHELL", o.healthCmd}
		}
	}
	if f.Changed("health-interval") {
		hc.IntervalNs = int64(o.healthInterval.d)
	}
	if f.Changed("health-timeout") {
		hc.TimeoutNs = int64(o.healthTimeout.d)
	}
	if f.Changed("health-retries") {
		hc.Retries = int32(o.healthRetries.v)
	}
	if f.Changed("health-start-period") {
		hc.StartPeriodNs = int64(o.healthStartPeriod.d)
	}
	ctr.Healthcheck = hc
	return nil
}

func (o *serviceUpdateOptions) applyRestart(f *pflag.FlagSet, task *shoalpb.TaskSpec, job bool) {
	if !f.Changed("restart-condition") && !f.Changed("restart-delay") && !f.Changed("restart-max-attempts") && !f.Changed("restart-window") {
		return
	}
	p := &shoalpb.RestartPolicy{}
	if task.Restart != nil {
		p = proto.Clone(task.Restart).(*shoalpb.RestartPolicy)
	} else if job {
		p.Condition = shoalpb.RestartPolicy_CONDITION_ON_FAILURE
	}
	if f.Changed("restart-condition") {
		p.Condition = restartConditions[o.restartCondition.value]
	}
	if f.Changed("restart-delay") {
		p.DelayNs = proto.Int64(int64(o.restartDelay.d))
	}
	if f.Changed("restart-max-attempts") {
		p.MaxAttempts = o.restartMaxAttempts.v
	}
	if f.Changed("restart-window") {
		p.WindowNs = int64(o.restartWindow.d)
	}
	task.Restart = p
}

// updateEnv removes the variables named in rm (KEY or KEY=VALUE), then
// sets those in add, replacing any of the same name.
func updateEnv(env, rm, add []string) []string {
	name := func(e string) string { k, _, _ := strings.Cut(e, "="); return k }
	drop := map[string]bool{}
	for _, r := range rm {
		drop[name(r)] = true
	}
	for _, a := range add {
		drop[name(a)] = true
	}
	out := slices.DeleteFunc(slices.Clone(env), func(e string) bool { return drop[name(e)] })
	out = append(out, add...)
	if len(out) == 0 {
		return nil
	}
	return out
}

// updateLabels removes the keys in rm, then sets those in add.
func updateLabels(labels map[string]string, rm []string, add map[string]string) map[string]string {
	if len(rm) == 0 && len(add) == 0 {
		return labels
	}
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for _, k := range rm {
		delete(out, k)
	}
	for k, v := range add {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// updateMounts removes the mounts whose target is in rm, then adds those
// in add, replacing any with the same target.
func updateMounts(mounts []*shoalpb.Mount, rm []string, add []*shoalpb.Mount) []*shoalpb.Mount {
	if len(rm) == 0 && len(add) == 0 {
		return mounts
	}
	out := slices.DeleteFunc(slices.Clone(mounts), func(m *shoalpb.Mount) bool {
		return slices.Contains(rm, m.GetTarget()) || slices.ContainsFunc(add, func(a *shoalpb.Mount) bool { return a.GetTarget() == m.GetTarget() })
	})
	out = append(out, add...)
	if len(out) == 0 {
		return nil
	}
	return out
}
