package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// serviceJSON is a service as `shoal service inspect` shows it: the shape
// of docker's swarm service, so templates written for docker keep working.
// Durations are nanoseconds, as in docker's JSON.
type serviceJSON struct {
	ID           string
	Version      objectVersion
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Spec         serviceSpecJSON
	PreviousSpec *serviceSpecJSON  `json:",omitempty"`
	Endpoint     *endpointJSON     `json:",omitempty"`
	UpdateStatus *updateStatusJSON `json:",omitempty"`
	JobStatus    *jobStatusJSON    `json:",omitempty"`

	// networkNames names the networks of --pretty output, by ID.
	networkNames map[string]string
	// waitingFor words, for --pretty output, the dependencies the service
	// is held back for (waitingText); "" when it is not held back.
	waitingFor string
}

type serviceSpecJSON struct {
	Name         string
	Labels       map[string]string
	TaskTemplate taskSpecJSON
	Mode         serviceModeJSON
	// UpdateConfig and RollbackConfig: see serviceupdatejson.go.
	UpdateConfig   *updateConfigJSON `json:",omitempty"`
	RollbackConfig *updateConfigJSON `json:",omitempty"`
	EndpointSpec   *endpointSpecJSON `json:",omitempty"`
}

type taskSpecJSON struct {
	ContainerSpec containerSpecJSON
	Resources     resourceRequirementsJSON
	RestartPolicy *restartPolicyJSON `json:",omitempty"`
	Placement     placementJSON
	Networks      []networkAttachmentConfigJSON `json:",omitempty"`
	ForceUpdate   uint64
}

type containerSpecJSON struct {
	Image           string
	Labels          map[string]string `json:",omitempty"`
	Command         []string          `json:",omitempty"`
	Args            []string          `json:",omitempty"`
	Hostname        string            `json:",omitempty"`
	Env             []string          `json:",omitempty"`
	Dir             string            `json:",omitempty"`
	User            string            `json:",omitempty"`
	Mounts          []mountJSON       `json:",omitempty"`
	StopGracePeriod *int64            `json:",omitempty"`
	StopSignal      string            `json:",omitempty"`
	Healthcheck     *healthcheckJSON  `json:",omitempty"`
}

type mountJSON struct {
	Type          string
	Source        string `json:",omitempty"`
	Target        string
	ReadOnly      bool               `json:",omitempty"`
	BindOptions   *bindOptionsJSON   `json:",omitempty"`
	VolumeOptions *volumeOptionsJSON `json:",omitempty"`
	TmpfsOptions  *tmpfsOptionsJSON  `json:",omitempty"`
}

type bindOptionsJSON struct {
	Propagation string `json:",omitempty"`
}

type volumeOptionsJSON struct {
	NoCopy       bool              `json:",omitempty"`
	Labels       map[string]string `json:",omitempty"`
	DriverConfig *driverConfigJSON `json:",omitempty"`
}

type driverConfigJSON struct {
	Name    string            `json:",omitempty"`
	Options map[string]string `json:",omitempty"`
}

type tmpfsOptionsJSON struct {
	SizeBytes int64  `json:",omitempty"`
	Mode      uint32 `json:",omitempty"`
}

type healthcheckJSON struct {
	Test        []string `json:",omitempty"`
	Interval    int64    `json:",omitempty"`
	Timeout     int64    `json:",omitempty"`
	StartPeriod int64    `json:",omitempty"`
	Retries     int32    `json:",omitempty"`
}

type resourceRequirementsJSON struct {
	Limits       *resourcesSpecJSON `json:",omitempty"`
	Reservations *resourcesSpecJSON `json:",omitempty"`
}

type resourcesSpecJSON struct {
	NanoCPUs    int64 `json:",omitempty"`
	MemoryBytes int64 `json:",omitempty"`
}

type restartPolicyJSON struct {
	Condition   string
	Delay       *int64 `json:",omitempty"`
	MaxAttempts uint64
	Window      int64 `json:",omitempty"`
}

type placementJSON struct {
	Constraints []string            `json:",omitempty"`
	Preferences []placementPrefJSON `json:",omitempty"`
	MaxReplicas uint64              `json:",omitempty"`
}

type placementPrefJSON struct {
	Spread spreadJSON
}

type spreadJSON struct {
	SpreadDescriptor string
}

type serviceModeJSON struct {
	Replicated    *replicatedJSON    `json:",omitempty"`
	Global        *struct{}          `json:",omitempty"`
	ReplicatedJob *replicatedJobJSON `json:",omitempty"`
	GlobalJob     *struct{}          `json:",omitempty"`
}

type replicatedJSON struct {
	Replicas uint64
}

type replicatedJobJSON struct {
	MaxConcurrent    uint64
	TotalCompletions uint64
}

type jobStatusJSON struct {
	JobIteration  objectVersion
	LastExecution time.Time
}

func newServiceJSON(s *shoalpb.Service) serviceJSON {
	v := serviceJSON{
		ID:        s.GetId(),
		Version:   objectVersion{Index: s.GetMeta().GetVersion()},
		CreatedAt: unixNano(s.GetMeta().GetCreatedAt()),
		UpdatedAt: unixNano(s.GetMeta().GetUpdatedAt()),
		Spec:      newServiceSpecJSON(s.GetSpec()),
		Endpoint:  newEndpointJSON(s.GetEndpoint()),
	}
	if s.GetPreviousSpec() != nil {
		prev := newServiceSpecJSON(s.GetPreviousSpec())
		v.PreviousSpec = &prev
	}
	v.UpdateStatus = newUpdateStatusJSON(s.GetUpdateStatus())
	if js := s.GetJobStatus(); js != nil {
		v.JobStatus = &jobStatusJSON{JobIteration: objectVersion{Index: js.GetJobIteration()}, LastExecution: unixNano(js.GetLastExecution())}
	}
	return v
}

func newServiceSpecJSON(spec *shoalpb.ServiceSpec) serviceSpecJSON {
	labels := spec.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	task := spec.GetTask()
	c := task.GetContainer()
	v := serviceSpecJSON{
		Name:   spec.GetName(),
		Labels: labels,
		TaskTemplate: taskSpecJSON{
			ContainerSpec: containerSpecJSON{
				Image:           c.GetImage(),
				Labels:          c.GetLabels(),
				Command:         c.GetCommand(),
				Args:            c.GetArgs(),
				Hostname:        c.GetHostname(),
				Env:             c.GetEnv(),
				Dir:             c.GetDir(),
				User:            c.GetUser(),
				StopGracePeriod: c.StopGracePeriodNs,
				StopSignal:      c.GetStopSignal(),
			},
			Resources: resourceRequirementsJSON{
				Limits:       newResourcesJSON(task.GetResources().GetLimits()),
				Reservations: newResourcesJSON(task.GetResources().GetReservations()),
			},
			Placement: placementJSON{
				Constraints: task.GetPlacement().GetConstraints(),
				MaxReplicas: task.GetPlacement().GetMaxReplicas(),
			},
			Networks:    newNetworksJSON(task.GetNetworks()),
			ForceUpdate: task.GetForceUpdate(),
		},
		UpdateConfig:   newUpdateConfigJSON(spec.GetUpdate()),
		RollbackConfig: newUpdateConfigJSON(spec.GetRollback()),
		EndpointSpec:   newEndpointSpecJSON(spec.GetEndpoint()),
	}
	for _, m := range c.GetMounts() {
		v.TaskTemplate.ContainerSpec.Mounts = append(v.TaskTemplate.ContainerSpec.Mounts, newMountJSON(m))
	}
	if h := c.GetHealthcheck(); h != nil {
		v.TaskTemplate.ContainerSpec.Healthcheck = &healthcheckJSON{
			Test: h.GetTest(), Interval: h.GetIntervalNs(), Timeout: h.GetTimeoutNs(), StartPeriod: h.GetStartPeriodNs(), Retries: h.GetRetries(),
		}
	}
	if r := task.GetRestart(); r != nil {
		v.TaskTemplate.RestartPolicy = &restartPolicyJSON{
			Condition:   restartConditionWord(r.GetCondition()),
			Delay:       r.DelayNs,
			MaxAttempts: r.GetMaxAttempts(),
			Window:      r.GetWindowNs(),
		}
	}
	for _, p := range task.GetPlacement().GetPreferences() {
		v.TaskTemplate.Placement.Preferences = append(v.TaskTemplate.Placement.Preferences, placementPrefJSON{Spread: spreadJSON{SpreadDescriptor: p.GetSpreadDescriptor()}})
	}
	switch {
	case spec.GetReplicated() != nil:
		v.Mode.Replicated = &replicatedJSON{Replicas: spec.GetReplicated().GetReplicas()}
	case spec.GetGlobal() != nil:
		v.Mode.Global = &struct{}{}
	case spec.GetReplicatedJob() != nil:
		j := spec.GetReplicatedJob()
		v.Mode.ReplicatedJob = &replicatedJobJSON{MaxConcurrent: j.GetMaxConcurrent(), TotalCompletions: j.GetTotalCompletions()}
	case spec.GetGlobalJob() != nil:
		v.Mode.GlobalJob = &struct{}{}
	}
	return v
}

func newResourcesJSON(r *shoalpb.Resources) *resourcesSpecJSON {
	if r == nil {
		return nil
	}
	return &resourcesSpecJSON{NanoCPUs: r.GetNanoCpus(), MemoryBytes: r.GetMemoryBytes()}
}

func newMountJSON(m *shoalpb.Mount) mountJSON {
	v := mountJSON{
		Type:     strings.ToLower(strings.TrimPrefix(m.GetType().String(), "TYPE_")),
		Source:   m.GetSource(),
		Target:   m.GetTarget(),
		ReadOnly: m.GetReadOnly(),
	}
	switch m.GetType() {
	case shoalpb.Mount_TYPE_BIND:
		if m.GetBindPropagation() != "" {
			v.BindOptions = &bindOptionsJSON{Propagation: m.GetBindPropagation()}
		}
	case shoalpb.Mount_TYPE_VOLUME:
		if m.GetVolumeNocopy() || len(m.GetVolumeLabels()) > 0 || m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOptions()) > 0 {
			v.VolumeOptions = &volumeOptionsJSON{NoCopy: m.GetVolumeNocopy(), Labels: m.GetVolumeLabels()}
			if m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOptions()) > 0 {
				v.VolumeOptions.DriverConfig = &driverConfigJSON{Name: m.GetVolumeDriver(), Options: m.GetVolumeDriverOptions()}
			}
		}
	case shoalpb.Mount_TYPE_TMPFS:
		if m.GetTmpfsSizeBytes() != 0 || m.GetTmpfsMode() != 0 {
			v.TmpfsOptions = &tmpfsOptionsJSON{SizeBytes: m.GetTmpfsSizeBytes(), Mode: m.GetTmpfsMode()}
		}
	}
	return v
}

func restartConditionWord(c shoalpb.RestartPolicy_Condition) string {
	return strings.ReplaceAll(enumWord(c.String(), "CONDITION_"), "_", "-")
}

type serviceInspectOptions struct {
	pretty bool
	format string
}

func newServiceInspectCmd(g *globalOptions) *cobra.Command {
	o := &serviceInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] SERVICE [SERVICE...]",
		Short: "Display detailed information on one or more services",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServiceInspect(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.pretty, "pretty", false, "Print the information in a human friendly format")
	f.StringVarP(&o.format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func runServiceInspect(cmd *cobra.Command, g *globalOptions, o *serviceInspectOptions, refs []string) error {
	if o.pretty && o.format != "" {
		return usageErrorf(cmd, "--format is incompatible with human friendly format")
	}
	var tmpl *templateFormat
	if o.format != "" {
		var err error
		if tmpl, err = parseFormat(o.format); err != nil {
			return err
		}
	}
	return g.withClient(func(c *client) error {
		var services []serviceJSON
		var errs []string
		for _, ref := range refs {
			resp, err := call(cmd.Context(), c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: ref, InsertDefaults: true})
			var de *daemonError
			switch {
			case err == nil:
				s := newServiceJSON(resp.GetService())
				s.waitingFor = waitingText(resp.GetStatus().GetWaitingFor())
				services = append(services, s)
			case isNotFound(err):
				errs = append(errs, "Error: No such service: "+ref)
			case errors.As(err, &de):
				errs = append(errs, err.Error())
			default:
				return err
			}
		}
		if o.pretty {
			names := networkNames(cmd, c)
			for i := range services {
				services[i].networkNames = names
			}
		}
		if err := printServices(cmd.OutOrStdout(), o, tmpl, services); err != nil {
			return err
		}
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "\n"))
		}
		return nil
	})
}

func printServices(w io.Writer, o *serviceInspectOptions, tmpl *templateFormat, services []serviceJSON) error {
	switch {
	case o.pretty:
		for i, s := range services {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if _, err := io.WriteString(w, servicePretty(s)); err != nil {
				return err
			}
		}
		return nil
	case tmpl != nil:
		for _, s := range services {
			if err := tmpl.execute(w, s); err != nil {
				return err
			}
		}
		return nil
	}
	if services == nil {
		services = []serviceJSON{}
	}
	return writeJSON(w, services)
}

// servicePretty words a service for people, as docker's --pretty does:
// "Label:" padded to a fixed column, then the value.
func servicePretty(s serviceJSON) string {
	var b strings.Builder
	kv := func(label string, value any) { fmt.Fprintf(&b, "%-24s%v\n", label+":", value) }
	line := func(s string) { b.WriteString(s + "\n") }
	dur := func(ns int64) string { return time.Duration(ns).String() }
	spec := s.Spec
	kv("ID", s.ID)
	kv("Name", spec.Name)
	if len(spec.Labels) > 0 {
		line("Labels:")
		for _, k := range sortedKeys(spec.Labels) {
			line(" " + labelText(k, spec.Labels[k]))
		}
	}
	switch m := spec.Mode; {
	case m.Replicated != nil:
		kv("Service Mode", "Replicated")
		kv(" Replicas", m.Replicated.Replicas)
	case m.Global != nil:
		kv("Service Mode", "Global")
	case m.ReplicatedJob != nil:
		kv("Service Mode", "Replicated Job")
		kv(" Max Concurrent", m.ReplicatedJob.MaxConcurrent)
		kv(" Total Completions", m.ReplicatedJob.TotalCompletions)
	case m.GlobalJob != nil:
		kv("Service Mode", "Global Job")
	}
	if s.waitingFor != "" {
		// No tasks yet: the orchestrators hold the service back.
		kv("Held Back", s.waitingFor)
	}
	writeUpdateStatusPretty(s.UpdateStatus, prettyNow(), kv, line)
	t := spec.TaskTemplate
	line("Placement:")
	if p := t.Placement; len(p.Constraints) > 0 {
		kv(" Constraints", "["+strings.Join(p.Constraints, " ")+"]")
	}
	for _, p := range t.Placement.Preferences {
		kv(" Preferences", "spread="+p.Spread.SpreadDescriptor)
	}
	if t.Placement.MaxReplicas > 0 {
		kv(" Max Replicas Per Node", t.Placement.MaxReplicas)
	}
	if r := t.RestartPolicy; r != nil {
		line("RestartPolicy:")
		kv(" Condition", r.Condition)
		if r.Delay != nil {
			kv(" Delay", dur(*r.Delay))
		}
		kv(" Max Attempts", r.MaxAttempts)
		if r.Window != 0 {
			kv(" Window", dur(r.Window))
		}
	}
	writeUpdateConfigsPretty(spec, kv, line)
	c := t.ContainerSpec
	line("ContainerSpec:")
	kv(" Image", c.Image)
	if len(c.Command) > 0 {
		kv(" Command", strings.Join(c.Command, " "))
	}
	if len(c.Args) > 0 {
		kv(" Args", strings.Join(c.Args, " "))
	}
	if len(c.Env) > 0 {
		kv(" Env", strings.Join(c.Env, " "))
	}
	for _, f := range []struct{ label, value string }{{" Dir", c.Dir}, {" User", c.User}, {" Hostname", c.Hostname}, {" Stop Signal", c.StopSignal}} {
		if f.value != "" {
			kv(f.label, f.value)
		}
	}
	if c.StopGracePeriod != nil {
		kv(" Stop Grace Period", dur(*c.StopGracePeriod))
	}
	if h := c.Healthcheck; h != nil {
		line(" Healthcheck:")
		if len(h.Test) > 0 {
			kv("  Test", strings.Join(h.Test, " "))
		}
		for _, f := range []struct {
			label string
			ns    int64
		}{{"  Interval", h.Interval}, {"  Timeout", h.Timeout}, {"  Start Period", h.StartPeriod}} {
			if f.ns != 0 {
				kv(f.label, dur(f.ns))
			}
		}
		kv("  Retries", h.Retries)
	}
	if len(c.Mounts) > 0 {
		line("Mounts:")
	}
	for _, m := range c.Mounts {
		kv(" Target", m.Target)
		kv("  Source", m.Source)
		kv("  ReadOnly", m.ReadOnly)
		kv("  Type", m.Type)
	}
	if res := t.Resources; res.Limits != nil || res.Reservations != nil {
		line("Resources:")
		for _, r := range []struct {
			label string
			res   *resourcesSpecJSON
		}{{" Reservations:", res.Reservations}, {" Limits:", res.Limits}} {
			if r.res == nil {
				continue
			}
			line(r.label)
			if r.res.NanoCPUs != 0 {
				kv("  CPU", strconv.FormatFloat(float64(r.res.NanoCPUs)/1e9, 'f', -1, 64))
			}
			if r.res.MemoryBytes != 0 {
				kv("  Memory", binarySize(r.res.MemoryBytes))
			}
		}
	}
	writeEndpointPretty(&b, s, kv, line)
	return b.String()
}

func labelText(k, v string) string {
	if v == "" {
		return k
	}
	return k + "=" + v
}
