package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newServiceCmd(g *globalOptions) *cobra.Command {
	return newGroupCmd("service", "Manage swarm services",
		newServiceCreateCmd(g),
		newServiceInspectCmd(g),
		newServiceLogsCmd(g),
		newServiceLsCmd(g),
		newServicePsCmd(g),
		newServiceRmCmd(g),
		newServiceRollbackCmd(g),
		newServiceScaleCmd(g),
		newServiceUpdateCmd(g),
	)
}

// shortIDLength is how much of an ID tables show, as docker does.
const shortIDLength = 12

func shortID(id string) string {
	if len(id) > shortIDLength {
		return id[:shortIDLength]
	}
	return id
}

// shortImage drops the digest from an image reference, as docker's tables
// do ("nginx:1.27@sha256:…" shows as "nginx:1.27").
func shortImage(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i]
	}
	return image
}

// serviceModeWord is the MODE column of service ls.
func serviceModeWord(spec *shoalpb.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *shoalpb.ServiceSpec_Replicated:
		return "replicated"
	case *shoalpb.ServiceSpec_Global:
		return "global"
	case *shoalpb.ServiceSpec_ReplicatedJob:
		return "replicated job"
	case *shoalpb.ServiceSpec_GlobalJob:
		return "global job"
	}
	return ""
}

// jobTotal is how many completions a replicated job needs: as the
// cluster applies it, each job count defaults to the other, and both to 1.
func jobTotal(j *shoalpb.ReplicatedJob) uint64 {
	switch {
	case j.GetTotalCompletions() != 0:
		return j.GetTotalCompletions()
	case j.GetMaxConcurrent() != 0:
		return j.GetMaxConcurrent()
	}
	return 1
}

// replicasText is the REPLICAS column: running/desired, with the
// completions of jobs, the per-node maximum of replicated services and
// the dependencies a service held back for its depends_on waits for.
func replicasText(spec *shoalpb.ServiceSpec, st *shoalpb.ServiceStatus) string {
	running, desired, completed := st.GetRunningTasks(), st.GetDesiredTasks(), st.GetCompletedTasks()
	text := fmt.Sprintf("%d/%d", running, desired)
	switch {
	case spec.GetReplicatedJob() != nil:
		text += fmt.Sprintf(" (%d/%d completed)", completed, jobTotal(spec.GetReplicatedJob()))
	case spec.GetGlobalJob() != nil:
		text += fmt.Sprintf(" (%d/%d completed)", completed, completed+desired)
	case spec.GetReplicated() != nil:
		if m := spec.GetTask().GetPlacement().GetMaxReplicas(); m > 0 {
			text += fmt.Sprintf(" (max %d per node)", m)
		}
	}
	if w := waitingText(st.GetWaitingFor()); w != "" {
		text += " (" + w + ")"
	}
	return text
}

// waitingText words the dependencies a held-back service waits for:
// "waiting for app_db to be healthy, app_migrate to complete", or "" when
// it waits for none.
func waitingText(waits []*shoalpb.ServiceDependencyWait) string {
	if len(waits) == 0 {
		return ""
	}
	parts := make([]string, 0, len(waits))
	for _, w := range waits {
		parts = append(parts, w.GetService()+" "+dependencyWaitWords(w))
	}
	return "waiting for " + strings.Join(parts, ", ")
}

func dependencyWaitWords(w *shoalpb.ServiceDependencyWait) string {
	if w.GetMissing() {
		return "to be created"
	}
	switch w.GetCondition() {
	case shoalpb.ServiceDependency_CONDITION_HEALTHY:
		return "to be healthy"
	case shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY:
		return "to complete"
	}
	return "to start"
}

// serviceRow is one line of `shoal service ls`; --format templates see
// its fields.
type serviceRow struct {
	ID       string
	Name     string
	Mode     string
	Replicas string
	Image    string
	Ports    string
}

var serviceRowFields = []string{"ID", "Name", "Mode", "Replicas", "Image", "Ports"}

const defaultServiceTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}"

func newServiceRow(s *shoalpb.Service, st *shoalpb.ServiceStatus) serviceRow {
	return serviceRow{
		ID:       shortID(s.GetId()),
		Name:     s.GetSpec().GetName(),
		Mode:     serviceModeWord(s.GetSpec()),
		Replicas: replicasText(s.GetSpec(), st) + updateStateSuffix(s),
		Image:    shortImage(s.GetSpec().GetTask().GetContainer().GetImage()),
		Ports:    servicePorts(s),
	}
}

type serviceLsOptions struct {
	quiet   bool
	format  string
	filters filterValue
}

func newServiceLsCmd(g *globalOptions) *cobra.Command {
	o := &serviceLsOptions{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List services",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := listFormat(o.format, defaultServiceTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.ListServices, &shoalpb.ListServicesRequest{Filters: o.filters.proto()})
				if err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), tmpl, resp)
			})
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// addFlags registers the flags `service ls` and `stack services` share.
func (o *serviceLsOptions) addFlags(f *pflag.FlagSet) {
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display IDs")
	f.StringVar(&o.format, "format", "", "Format the output using the given Go template")
	f.VarP(&o.filters, "filter", "f", "Filter output based on conditions provided (id, label, mode, name)")
}

// print writes the services listed: their short IDs with --quiet, else
// the table or template.
func (o *serviceLsOptions) print(w io.Writer, tmpl *templateFormat, resp *shoalpb.ListServicesResponse) error {
	if o.quiet {
		for _, s := range resp.GetServices() {
			fmt.Fprintln(w, shortID(s.GetId()))
		}
		return nil
	}
	return renderServiceList(w, tmpl, resp)
}

// listFormat parses a list command's --format, "" and "table" meaning the
// default table.
func listFormat(format, def string) (*templateFormat, error) {
	if t := strings.TrimSpace(format); t == "" || t == "table" {
		format = def
	}
	return parseFormat(format)
}

func renderServiceList(w io.Writer, tmpl *templateFormat, resp *shoalpb.ListServicesResponse) error {
	items := make([]any, 0, len(resp.GetServices()))
	for _, s := range resp.GetServices() {
		items = append(items, newServiceRow(s, resp.GetStatuses()[s.GetId()]))
	}
	return tmpl.render(w, headerFor(serviceRowFields, nil), items)
}

func newServiceRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE [SERVICE...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more services",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client) error {
				return removeEach(cmd, "service", args, func(ref string) error {
					_, err := call(cmd.Context(), c, c.control.RemoveService, &shoalpb.RemoveServiceRequest{ServiceRef: ref})
					return err
				})
			})
		},
	}
}

type serviceScaleOptions struct {
	detach bool
}

type scaleTarget struct {
	ref      string
	replicas uint64
}

// updateRetries is how often service scale re-reads a service that
// changed between its read and its write.
const updateRetries = 3

func newServiceScaleCmd(g *globalOptions) *cobra.Command {
	o := &serviceScaleOptions{}
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
		Short: "Scale one or multiple replicated services",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var targets []scaleTarget
			for _, a := range args {
				ref, n, ok := strings.Cut(a, "=")
				if !ok || ref == "" {
					return usageErrorf(cmd, "invalid scale specifier %q: must be SERVICE=REPLICAS", a)
				}
				replicas, err := strconv.ParseUint(n, 10, 64)
				if err != nil {
					return usageErrorf(cmd, "invalid replicas value %q for service %s: must be a non-negative integer", n, ref)
				}
				targets = append(targets, scaleTarget{ref: ref, replicas: replicas})
			}
			return g.withClient(func(c *client) error { return runServiceScale(cmd, c, o, targets) })
		},
	}
	cmd.Flags().BoolVarP(&o.detach, "detach", "d", false, "Exit immediately instead of waiting for the service to converge")
	return cmd
}

func runServiceScale(cmd *cobra.Command, c *client, o *serviceScaleOptions, targets []scaleTarget) error {
	out := cmd.OutOrStdout()
	var errs []string
	var scaled []string
	for _, t := range targets {
		id, err := scaleService(cmd, c, t)
		var de *daemonError
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s scaled to %d\n", t.ref, t.replicas)
			scaled = append(scaled, id)
		case isNotFound(err):
			errs = append(errs, "Error: No such service: "+t.ref)
		case errors.As(err, &de), errors.Is(err, errNotScalable):
			errs = append(errs, err.Error())
		default:
			return err
		}
	}
	if !o.detach {
		for _, id := range scaled {
			if err := waitForService(cmd.Context(), c, out, id, false); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

var errNotScalable = errors.New("scale can only be used with replicated or replicated-job mode")

// scaleService sets a service's replica count (total completions for a
// replicated job) by reading it and writing it back at the version read,
// reading again when someone else changed it in between.
func scaleService(cmd *cobra.Command, c *client, t scaleTarget) (string, error) {
	for attempt := 1; ; attempt++ {
		resp, err := call(cmd.Context(), c, c.control.GetService, &shoalpb.GetServiceRequest{ServiceRef: t.ref})
		if err != nil {
			return "", err
		}
		svc := resp.GetService()
		spec := proto.Clone(svc.GetSpec()).(*shoalpb.ServiceSpec)
		switch {
		case spec.GetReplicated() != nil:
			spec.GetReplicated().Replicas = t.replicas
		case spec.GetReplicatedJob() != nil:
			spec.GetReplicatedJob().TotalCompletions = t.replicas
		default:
			return "", fmt.Errorf("%s: %w", t.ref, errNotScalable)
		}
		_, err = call(cmd.Context(), c, c.control.UpdateService, &shoalpb.UpdateServiceRequest{
			ServiceRef: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: spec,
		})
		var de *daemonError
		if errors.As(err, &de) && de.code == codes.Aborted && attempt < updateRetries {
			continue
		}
		return svc.GetId(), err
	}
}

// removeEach removes each object named in refs with remove, printing the
// name of each one removed, as docker's rm commands do. Objects that do not
// exist or that the daemon refuses to remove are reported together at the
// end; any other error stops at once.
func removeEach(cmd *cobra.Command, kind string, refs []string, remove func(ref string) error) error {
	var errs []string
	for _, ref := range refs {
		err := remove(ref)
		var de *daemonError
		switch {
		case err == nil:
			fmt.Fprintln(cmd.OutOrStdout(), ref)
		case isNotFound(err):
			errs = append(errs, "Error: No such "+kind+": "+ref)
		case errors.As(err, &de):
			errs = append(errs, err.Error())
		default:
			return err
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
