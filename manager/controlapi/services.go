package controlapi

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Values the cluster uses for fields a spec leaves unset; GetService with
// insert_defaults shows them.
const (
	DefaultStopGracePeriod = 10 * time.Second
	DefaultRestartDelay    = 5 * time.Second
)

// modeName is the mode word docker uses in filters and flags.
func modeName(spec *shoalpb.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *shoalpb.ServiceSpec_Replicated:
		return "replicated"
	case *shoalpb.ServiceSpec_Global:
		return "global"
	case *shoalpb.ServiceSpec_ReplicatedJob:
		return "replicated-job"
	case *shoalpb.ServiceSpec_GlobalJob:
		return "global-job"
	}
	return ""
}

func isJobSpec(spec *shoalpb.ServiceSpec) bool {
	switch spec.GetMode().(type) {
	case *shoalpb.ServiceSpec_ReplicatedJob, *shoalpb.ServiceSpec_GlobalJob:
		return true
	}
	return false
}

// normalizedSpec returns a copy of spec with the defaults every stored
// spec has: a replicated mode with one replica when none is given.
func normalizedSpec(spec *shoalpb.ServiceSpec) *shoalpb.ServiceSpec {
	if spec == nil {
		return nil
	}
	spec = proto.Clone(spec).(*shoalpb.ServiceSpec)
	if spec.Mode == nil {
		spec.Mode = &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}}
	}
	return spec
}

// newID returns a fresh object ID.
func (s *Server) newID() (string, error) {
	if s.NewID == nil {
		return "", status.Error(codes.Internal, "controlapi: no ID generator configured (Server.NewID)")
	}
	return s.NewID(), nil
}

func (s *Server) findService(ref string) (*shoalpb.Service, error) {
	var svc *shoalpb.Service
	var err error
	s.Store.View(func(tx store.ReadTx) { svc, err = tx.FindService(ref) })
	if err != nil {
		return nil, storeError(err)
	}
	return svc, nil
}

func nameTaken(name string) error {
	return status.Errorf(codes.AlreadyExists, "service with name %s already exists", name)
}

// CreateService validates a spec and stores a new service made from it.
func (s *Server) CreateService(ctx context.Context, req *shoalpb.CreateServiceRequest) (*shoalpb.CreateServiceResponse, error) {
	spec := normalizedSpec(req.GetSpec())
	if err := validateServiceSpec(spec); err != nil {
		return nil, err
	}
	if err := s.resolveNetworks(spec, ""); err != nil {
		return nil, err
	}
	var taken bool
	s.Store.View(func(tx store.ReadTx) { taken = tx.ServiceByName(spec.Name) != nil })
	if taken {
		return nil, nameTaken(spec.Name)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	svc := newService(id, spec, s.now())
	err = s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: svc}})
	if status.Code(err) == codes.AlreadyExists {
		// Another create took the name between our check and our write.
		s.Store.View(func(tx store.ReadTx) { taken = tx.ServiceByName(spec.Name) != nil })
		if taken {
			return nil, nameTaken(spec.Name)
		}
	}
	if err != nil {
		return nil, err
	}
	out, err := s.findService(id)
	if err != nil {
		return nil, err
	}
	return &shoalpb.CreateServiceResponse{Service: out}, nil
}

// GetService returns one service, with the cluster's defaults filled in
// when asked.
func (s *Server) GetService(ctx context.Context, req *shoalpb.GetServiceRequest) (*shoalpb.GetServiceResponse, error) {
	svc, err := s.findService(req.GetServiceRef())
	if err != nil {
		return nil, err
	}
	var st *shoalpb.ServiceStatus
	s.Store.View(func(tx store.ReadTx) { st = serviceStatus(tx, svc) })
	if req.GetInsertDefaults() {
		svc = withDefaults(svc)
	}
	return &shoalpb.GetServiceResponse{Service: svc, Status: st}, nil
}

// withDefaults returns a copy of svc whose specs show the values the
// cluster applies to unset fields.
func withDefaults(svc *shoalpb.Service) *shoalpb.Service {
	svc = proto.Clone(svc).(*shoalpb.Service)
	fillDefaults(svc.Spec)
	fillDefaults(svc.PreviousSpec)
	return svc
}

func fillDefaults(spec *shoalpb.ServiceSpec) {
	if spec == nil {
		return
	}
	if spec.Task == nil {
		spec.Task = &shoalpb.TaskSpec{}
	}
	if spec.Task.Container == nil {
		spec.Task.Container = &shoalpb.ContainerSpec{}
	}
	if spec.Task.Container.StopGracePeriodNs == nil {
		spec.Task.Container.StopGracePeriodNs = proto.Int64(int64(DefaultStopGracePeriod))
	}
	if spec.Task.Restart == nil {
		spec.Task.Restart = &shoalpb.RestartPolicy{}
		if isJobSpec(spec) {
			spec.Task.Restart.Condition = shoalpb.RestartPolicy_CONDITION_ON_FAILURE
		}
	}
	if spec.Task.Restart.DelayNs == nil {
		spec.Task.Restart.DelayNs = proto.Int64(int64(DefaultRestartDelay))
	}
	fillUpdateDefaults(spec)
	if j := spec.GetReplicatedJob(); j != nil {
		// As docker: each count defaults to the other, and both to 1.
		switch {
		case j.MaxConcurrent == 0 && j.TotalCompletions == 0:
			j.MaxConcurrent, j.TotalCompletions = 1, 1
		case j.MaxConcurrent == 0:
			j.MaxConcurrent = j.TotalCompletions
		case j.TotalCompletions == 0:
			j.TotalCompletions = j.MaxConcurrent
		}
	}
}

var serviceFilters = map[string]bool{"id": true, "label": true, "mode": true, "name": true}

var serviceModes = []string{"replicated", "global", "replicated-job", "global-job"}

// ListServices lists services matching the filters, sorted by name, with
// their task counts.
func (s *Server) ListServices(ctx context.Context, req *shoalpb.ListServicesRequest) (*shoalpb.ListServicesResponse, error) {
	for _, k := range sortedFilterKeys(req.GetFilters()) {
		if !serviceFilters[k] {
			return nil, invalid("invalid filter '%s'", k)
		}
		if k == "mode" {
			for _, v := range req.Filters[k].GetValues() {
				if !slices.Contains(serviceModes, v) {
					return nil, invalid("invalid filter 'mode=%s': mode must be replicated, global, replicated-job or global-job", v)
				}
			}
		}
	}
	resp := &shoalpb.ListServicesResponse{Statuses: map[string]*shoalpb.ServiceStatus{}}
	s.Store.View(func(tx store.ReadTx) {
		for _, svc := range tx.Services() {
			if !matchService(svc, req.GetFilters()) {
				continue
			}
			resp.Services = append(resp.Services, svc)
			resp.Statuses[svc.Id] = serviceStatus(tx, svc)
		}
	})
	sort.Slice(resp.Services, func(i, j int) bool {
		a, b := resp.Services[i], resp.Services[j]
		if a.GetSpec().GetName() != b.GetSpec().GetName() {
			return a.GetSpec().GetName() < b.GetSpec().GetName()
		}
		return a.Id < b.Id
	})
	return resp, nil
}

func matchService(svc *shoalpb.Service, filters map[string]*shoalpb.FilterValues) bool {
	for k, fv := range filters {
		if len(fv.GetValues()) == 0 {
			continue
		}
		ok := false
		for _, v := range fv.Values {
			switch k {
			case "id":
				ok = strings.HasPrefix(svc.Id, v)
			case "name":
				ok = strings.HasPrefix(svc.GetSpec().GetName(), v)
			case "mode":
				ok = modeName(svc.GetSpec()) == v
			case "label":
				ok = matchLabel(svc.GetSpec().GetLabels(), v)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// serviceStatus counts a service's tasks as ListServices reports them,
// and says which dependencies it waits for while the orchestrators hold
// it back (orchestrator.HeldBack).
func serviceStatus(tx store.ReadTx, svc *shoalpb.Service) *shoalpb.ServiceStatus {
	st := &shoalpb.ServiceStatus{}
	tasks := tx.TasksByService(svc.Id)
	if len(tasks) == 0 { // a service with tasks is never held back
		for _, w := range orchestrator.HeldBack(tx, svc) {
			st.WaitingFor = append(st.WaitingFor, &shoalpb.ServiceDependencyWait{Service: w.Service, Condition: w.Condition, Missing: w.Missing})
		}
	}
	job := isJobSpec(svc.GetSpec())
	iteration := svc.GetJobStatus().GetJobIteration()
	var runnable, runnableNotDone uint64
	for _, t := range tasks {
		if job && t.GetJobIteration() != iteration {
			continue
		}
		state := t.GetStatus().GetState()
		if state == shoalpb.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() == shoalpb.TaskState_TASK_STATE_RUNNING {
			st.RunningTasks++
		}
		if job && state == shoalpb.TaskState_TASK_STATE_COMPLETE {
			st.CompletedTasks++
		}
		if t.GetDesiredState() <= shoalpb.TaskState_TASK_STATE_RUNNING {
			runnable++
			if state != shoalpb.TaskState_TASK_STATE_COMPLETE {
				runnableNotDone++
			}
		}
	}
	switch {
	case svc.GetSpec().GetReplicated() != nil:
		st.DesiredTasks = svc.GetSpec().GetReplicated().GetReplicas()
	case job:
		st.DesiredTasks = runnableNotDone
	default:
		st.DesiredTasks = runnable
	}
	return st
}

// UpdateService replaces a service's spec. The request carries the
// version the new spec was derived from, so concurrent updates never
// overwrite each other unnoticed.
func (s *Server) UpdateService(ctx context.Context, req *shoalpb.UpdateServiceRequest) (*shoalpb.UpdateServiceResponse, error) {
	cur, err := s.findService(req.GetServiceRef())
	if err != nil {
		return nil, err
	}
	if v := cur.GetMeta().GetVersion(); req.GetVersion() != v {
		return nil, status.Errorf(codes.Aborted, "service %s: version %d, stored %d: update out of sequence", cur.GetSpec().GetName(), req.GetVersion(), v)
	}
	var svc *shoalpb.Service
	if req.GetRollback() {
		if req.GetSpec() != nil {
			return nil, invalid("service %s: a rollback restores the previous spec and takes no new one", cur.GetSpec().GetName())
		}
		if svc, err = rolledBackService(cur, s.now()); err != nil {
			return nil, err
		}
	} else {
		spec := normalizedSpec(req.GetSpec())
		if err := validateServiceSpec(spec); err != nil {
			return nil, err
		}
		if err := s.resolveNetworks(spec, cur.Id); err != nil {
			return nil, err
		}
		if svc, err = updatedService(cur, spec, s.now()); err != nil {
			return nil, err
		}
	}
	if err := s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: svc}}); err != nil {
		return nil, err
	}
	out, err := s.findService(svc.Id)
	if err != nil {
		return nil, err
	}
	return &shoalpb.UpdateServiceResponse{Service: out}, nil
}

// newService is the service CreateService and DeployStack store for a
// validated spec with its defaults.
func newService(id string, spec *shoalpb.ServiceSpec, now int64) *shoalpb.Service {
	svc := &shoalpb.Service{
		Id:          id,
		Meta:        &shoalpb.Meta{CreatedAt: now, UpdatedAt: now},
		Spec:        spec,
		SpecVersion: 1,
	}
	if isJobSpec(spec) {
		svc.JobStatus = &shoalpb.JobStatus{LastExecution: now}
	}
	return svc
}

// updatedService returns cur with spec (validated, with its defaults) in
// force, written at cur's version: every change of a service's spec goes
// through here (UpdateService, DeployStack). A change of the task spec
// bumps spec_version, so the tasks made from the old one are rolled out.
func updatedService(cur *shoalpb.Service, spec *shoalpb.ServiceSpec, now int64) (*shoalpb.Service, error) {
	if old := cur.GetSpec().GetName(); spec.Name != old {
		return nil, invalid("invalid service name %q: renaming services is not supported (the service is named %q)", spec.Name, old)
	}
	if old, nw := modeName(cur.GetSpec()), modeName(spec); old != nw {
		return nil, invalid("invalid service mode %s: changing the mode of a service is not supported (the service is %s)", nw, old)
	}
	svc := proto.Clone(cur).(*shoalpb.Service)
	svc.Meta = &shoalpb.Meta{Version: cur.GetMeta().GetVersion(), CreatedAt: cur.GetMeta().GetCreatedAt(), UpdatedAt: now}
	svc.PreviousSpec = cur.GetSpec()
	svc.PreviousSpecVersion = cur.GetSpecVersion()
	svc.Spec = spec
	if specNeedsNewTasks(cur.GetSpec(), spec) {
		svc.SpecVersion++
		if !isJobSpec(spec) {
			svc.UpdateStatus = &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_UPDATING, StartedAt: now, Message: "update in progress"}
		}
	} else if updatePaused(cur) {
		// As with docker, updating a service again resumes a paused
		// update (or a paused rollback, as an update of its spec).
		svc.UpdateStatus = &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_UPDATING, StartedAt: now, Message: "update in progress"}
	}
	if isJobSpec(spec) {
		// Every update of a job runs it again.
		svc.JobStatus = &shoalpb.JobStatus{JobIteration: cur.GetJobStatus().GetJobIteration() + 1, LastExecution: now}
	}
	return svc, nil
}

// specNeedsNewTasks reports whether going from spec was to now replaces
// the service's tasks: a change of the task spec, or of the ports it
// publishes in host mode or its endpoint mode.
func specNeedsNewTasks(was, now *shoalpb.ServiceSpec) bool {
	return !proto.Equal(was.GetTask(), now.GetTask()) ||
		orchestrator.EndpointNeedsNewTasks(was.GetEndpoint(), now.GetEndpoint(), true)
}

func updatePaused(svc *shoalpb.Service) bool {
	switch svc.GetUpdateStatus().GetState() {
	case shoalpb.UpdateStatus_STATE_PAUSED, shoalpb.UpdateStatus_STATE_ROLLBACK_PAUSED:
		return true
	}
	return false
}

// rolledBackService returns cur with its previous spec restored, written
// at cur's version: docker's `service rollback`. The spec rolled back from
// becomes the previous spec, so a second rollback undoes the first. When
// the task spec changes the spec version moves forward (never back), so
// the tasks made from the spec rolled back from are the outdated ones.
func rolledBackService(cur *shoalpb.Service, now int64) (*shoalpb.Service, error) {
	if cur.GetPreviousSpec() == nil {
		return nil, precondition("service %s has no previous spec", cur.GetSpec().GetName())
	}
	svc := proto.Clone(cur).(*shoalpb.Service)
	svc.Meta = &shoalpb.Meta{Version: cur.GetMeta().GetVersion(), CreatedAt: cur.GetMeta().GetCreatedAt(), UpdatedAt: now}
	svc.Spec, svc.PreviousSpec = svc.PreviousSpec, svc.Spec
	svc.PreviousSpecVersion = cur.GetSpecVersion()
	if specNeedsNewTasks(cur.GetSpec(), svc.GetSpec()) {
		svc.SpecVersion = cur.GetSpecVersion() + 1
	}
	if isJobSpec(svc.Spec) {
		svc.JobStatus = &shoalpb.JobStatus{JobIteration: cur.GetJobStatus().GetJobIteration() + 1, LastExecution: now}
	} else {
		svc.UpdateStatus = &shoalpb.UpdateStatus{State: shoalpb.UpdateStatus_STATE_ROLLBACK_STARTED, StartedAt: now, Message: "manually requested rollback"}
	}
	return svc, nil
}

// Defaults of update and rollback configs, shown by GetService with
// insert_defaults. They are those of manager/orchestrator/update, which
// applies them.
const (
	DefaultUpdateParallelism = 1
	DefaultUpdateMonitor     = 5 * time.Second
	DefaultUpdateTaskTimeout = 2 * time.Minute
)

// validateUpdateConfigs checks a spec's update and rollback configs; jobs
// have none, as with docker. Every error names the value.
func validateUpdateConfigs(spec *shoalpb.ServiceSpec) error {
	if isJobSpec(spec) && (spec.GetUpdate() != nil || spec.GetRollback() != nil) {
		return invalid("service %s: jobs may not have an update or rollback config (every update of a job runs it again)", spec.GetName())
	}
	for _, c := range []struct {
		what string
		cfg  *shoalpb.UpdateConfig
	}{{"update", spec.GetUpdate()}, {"rollback", spec.GetRollback()}} {
		u := c.cfg
		if u == nil {
			continue
		}
		if _, ok := shoalpb.UpdateConfig_FailureAction_name[int32(u.FailureAction)]; !ok {
			return invalid("invalid %s failure action %d: must be pause, continue or rollback", c.what, u.FailureAction)
		}
		if c.what == "rollback" && u.FailureAction == shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK {
			return invalid("invalid rollback failure action rollback: a rollback is never rolled back (use pause or continue)")
		}
		if _, ok := shoalpb.UpdateConfig_Order_name[int32(u.Order)]; !ok {
			return invalid("invalid %s order %d: must be stop-first or start-first", c.what, u.Order)
		}
		for _, d := range []struct {
			name string
			ns   *int64
		}{{"delay", &u.DelayNs}, {"monitor", u.MonitorNs}, {"timeout", u.TaskTimeoutNs}} {
			if d.ns != nil && *d.ns < 0 {
				return invalid("invalid %s %s %s: must not be negative", c.what, d.name, time.Duration(*d.ns))
			}
		}
		if r := u.MaxFailureRatio; math.IsNaN(float64(r)) || r < 0 || r > 1 {
			return invalid("invalid %s max failure ratio %v: must be between 0 and 1", c.what, r)
		}
	}
	return nil
}

// fillUpdateDefaults shows the update and rollback configs the updater
// applies to spec.
func fillUpdateDefaults(spec *shoalpb.ServiceSpec) {
	if isJobSpec(spec) {
		return
	}
	fill := func(c *shoalpb.UpdateConfig) *shoalpb.UpdateConfig {
		if c == nil {
			c = &shoalpb.UpdateConfig{Parallelism: DefaultUpdateParallelism}
		}
		if c.MonitorNs == nil {
			c.MonitorNs = proto.Int64(int64(DefaultUpdateMonitor))
		}
		if c.TaskTimeoutNs == nil {
			c.TaskTimeoutNs = proto.Int64(int64(DefaultUpdateTaskTimeout))
		}
		return c
	}
	spec.Update = fill(spec.Update)
	spec.Rollback = fill(spec.Rollback)
}

// RemoveService deletes a service; the orchestrators shut its tasks down.
func (s *Server) RemoveService(ctx context.Context, req *shoalpb.RemoveServiceRequest) (*shoalpb.RemoveServiceResponse, error) {
	svc, err := s.findService(req.GetServiceRef())
	if err != nil {
		return nil, err
	}
	err = s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Service{Service: &shoalpb.Service{Id: svc.Id}}})
	if err != nil {
		return nil, err
	}
	return &shoalpb.RemoveServiceResponse{}, nil
}

func sortedFilterKeys(filters map[string]*shoalpb.FilterValues) []string {
	keys := make([]string, 0, len(filters))
	for k := range filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
