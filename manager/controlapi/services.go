package controlapi

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	var taken bool
	s.Store.View(func(tx store.ReadTx) { taken = tx.ServiceByName(spec.Name) != nil })
	if taken {
		return nil, nameTaken(spec.Name)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now()
	svc := &shoalpb.Service{
		Id:          id,
		Meta:        &shoalpb.Meta{CreatedAt: now, UpdatedAt: now},
		Spec:        spec,
		SpecVersion: 1,
	}
	if isJobSpec(spec) {
		svc.JobStatus = &shoalpb.JobStatus{LastExecution: now}
	}
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
	if req.GetInsertDefaults() {
		svc = withDefaults(svc)
	}
	return &shoalpb.GetServiceResponse{Service: svc}, nil
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
			resp.Statuses[svc.Id] = serviceStatus(svc, tx.TasksByService(svc.Id))
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

// serviceStatus counts a service's tasks as ListServices reports them.
func serviceStatus(svc *shoalpb.Service, tasks []*shoalpb.Task) *shoalpb.ServiceStatus {
	st := &shoalpb.ServiceStatus{}
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
	spec := normalizedSpec(req.GetSpec())
	if err := validateServiceSpec(spec); err != nil {
		return nil, err
	}
	if old := cur.GetSpec().GetName(); spec.Name != old {
		return nil, invalid("invalid service name %q: renaming services is not supported (the service is named %q)", spec.Name, old)
	}
	if old, nw := modeName(cur.GetSpec()), modeName(spec); old != nw {
		return nil, invalid("invalid service mode %s: changing the mode of a service is not supported (the service is %s)", nw, old)
	}
	now := s.now()
	svc := proto.Clone(cur).(*shoalpb.Service)
	svc.Meta = &shoalpb.Meta{Version: req.GetVersion(), CreatedAt: cur.GetMeta().GetCreatedAt(), UpdatedAt: now}
	svc.PreviousSpec = cur.GetSpec()
	svc.Spec = spec
	if !proto.Equal(cur.GetSpec().GetTask(), spec.GetTask()) {
		svc.SpecVersion++
	}
	if isJobSpec(spec) {
		// Every update of a job runs it again.
		svc.JobStatus = &shoalpb.JobStatus{JobIteration: cur.GetJobStatus().GetJobIteration() + 1, LastExecution: now}
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
