package controlapi

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Stacks are server-side objects: a deploy is validated as a whole and
// written in one Raft entry (services created, updated and pruned, stack
// networks created, the stack with a new revision), so a stack is never
// half deployed. The stack keeps its last MaxStackRevisions deploys;
// RollbackStack redeploys one of them as a new revision.

// StackNamespaceLabel marks the services and networks of a stack with its
// name, as docker stack deploy does.
const StackNamespaceLabel = "com.docker.stack.namespace"

// MaxStackRevisions is how many revisions a stack keeps.
const MaxStackRevisions = 10

// MaxStackNameLength leaves room in service names for "_" and a short name.
const MaxStackNameLength = 48

// deployRetries bounds how often a deploy is planned again when the store
// changed between its read and its write (a service's update status, say).
const deployRetries = 5

var stackNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validateStackName(name string) error {
	if name == "" {
		return invalid("stack name is required")
	}
	if len(name) > MaxStackNameLength || !stackNameRE.MatchString(name) {
		return invalid("invalid stack name %q: names must be at most %d characters of letters, digits, '_', '.' and '-', starting with a letter or digit", name, MaxStackNameLength)
	}
	return nil
}

func inStack(labels map[string]string, stack string) bool {
	return labels[StackNamespaceLabel] == stack
}

func stackNotFound(name string) error {
	return status.Errorf(codes.NotFound, "stack %s not found", name)
}

// DeployStack creates or updates a stack's services and networks in one
// write and records the deploy as a new revision.
func (s *Server) DeployStack(ctx context.Context, req *shoalpb.DeployStackRequest) (*shoalpb.DeployStackResponse, error) {
	st, err := s.deployStack(ctx, req.GetSpec(), req.GetPrune(), "deploy")
	if err != nil {
		return nil, err
	}
	return &shoalpb.DeployStackResponse{Stack: st}, nil
}

// checkStackSpec validates a stack spec that needs no store, and returns
// the copy that is deployed and kept: service specs with their defaults,
// every service and network labelled with the stack.
func checkStackSpec(in *shoalpb.StackSpec) (*shoalpb.StackSpec, error) {
	if in == nil {
		return nil, invalid("stack spec is required")
	}
	spec := proto.Clone(in).(*shoalpb.StackSpec)
	if err := validateStackName(spec.Name); err != nil {
		return nil, err
	}
	if err := validateLabels("stack label", spec.Labels); err != nil {
		return nil, err
	}
	if len(spec.Services) == 0 {
		return nil, invalid("stack %s has no services", spec.Name)
	}
	label := func(what, name string, labels map[string]string) (map[string]string, error) {
		if v, ok := labels[StackNamespaceLabel]; ok && v != spec.Name {
			return nil, invalid("invalid %s %s: its label %s=%s names another stack than %s", what, name, StackNamespaceLabel, v, spec.Name)
		}
		if labels == nil {
			labels = map[string]string{}
		}
		labels[StackNamespaceLabel] = spec.Name
		return labels, nil
	}
	names := map[string]string{}
	mesh := map[allocator.PortKey]string{} // ports published on the routing mesh → service
	for i, svc := range spec.Services {
		svc = normalizedSpec(svc)
		spec.Services[i] = svc
		if err := validateServiceSpec(svc); err != nil {
			return nil, prefixed(err, "service "+svc.GetName())
		}
		if !strings.HasPrefix(svc.Name, spec.Name+"_") {
			return nil, invalid("invalid service name %q: the services of stack %s are named %s_<name>", svc.Name, spec.Name, spec.Name)
		}
		key := strings.ToLower(svc.Name)
		if other, ok := names[key]; ok {
			return nil, invalid("invalid stack %s: service name %s is given twice (%s)", spec.Name, svc.Name, other)
		}
		names[key] = svc.Name
		for _, p := range svc.GetEndpoint().GetPorts() {
			if p.PublishMode != shoalpb.PortConfig_PUBLISH_MODE_INGRESS || p.PublishedPort == 0 {
				continue
			}
			k := allocator.PortKey{Protocol: p.Protocol, Port: p.PublishedPort}
			if other, ok := mesh[k]; ok {
				return nil, invalid("invalid stack %s: services %s and %s both publish port %s", spec.Name, other, svc.Name, k)
			}
			mesh[k] = svc.Name
		}
		var err error
		if svc.Labels, err = label("service", svc.Name, svc.Labels); err != nil {
			return nil, err
		}
	}
	nets := map[string]bool{}
	for _, n := range spec.Networks {
		if n == nil {
			return nil, invalid("invalid stack %s: a network spec is empty", spec.Name)
		}
		if err := validateNetworkName(n.Name); err != nil {
			return nil, err
		}
		if nets[n.Name] {
			return nil, invalid("invalid stack %s: network %s is given twice", spec.Name, n.Name)
		}
		nets[n.Name] = true
		if n.Ingress {
			return nil, invalid("invalid network %s: a stack cannot make the ingress network", n.Name)
		}
		var err error
		if n.Labels, err = label("network", n.Name, n.Labels); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// prefixed puts what an InvalidArgument error is about in front of it.
func prefixed(err error, what string) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	return status.Error(st.Code(), what+": "+st.Message())
}

// deployStack makes the stack's services and networks match spec and
// appends a revision with source, in one write. With prune, the stack's
// services spec does not list are removed.
func (s *Server) deployStack(ctx context.Context, in *shoalpb.StackSpec, prune bool, source string) (*shoalpb.Stack, error) {
	spec, err := checkStackSpec(in)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		proposed, err := s.deployOnce(ctx, spec, prune, source)
		if c := status.Code(err); proposed && (c == codes.Aborted || c == codes.AlreadyExists) && attempt < deployRetries {
			// The store changed between the plan's read and its write
			// (a service's update status, a name taken meanwhile): plan
			// again on the new state, where a real conflict is named.
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	var st *shoalpb.Stack
	s.Store.View(func(tx store.ReadTx) { st = tx.StackByName(spec.Name) })
	if st == nil {
		return nil, status.Errorf(codes.Internal, "stack %s was written but cannot be read back", spec.Name)
	}
	return st, nil
}

// deployOnce plans a deploy on the current store and proposes it;
// proposed says whether an error came from the write rather than the plan.
func (s *Server) deployOnce(ctx context.Context, spec *shoalpb.StackSpec, prune bool, source string) (proposed bool, err error) {
	// Network allocation reads the store and must not race another
	// allocation until this write is applied.
	unlock := s.lockNetworks()
	defer unlock()
	var actions []*shoalpb.StoreAction
	s.Store.View(func(tx store.ReadTx) { actions, err = s.planDeploy(tx, spec, prune, source) })
	if err != nil {
		return false, err
	}
	return true, s.propose(ctx, actions...)
}

// planDeploy returns the actions of one deploy, read from tx.
func (s *Server) planDeploy(tx store.ReadTx, spec *shoalpb.StackSpec, prune bool, source string) ([]*shoalpb.StoreAction, error) {
	now := s.now()
	var actions []*shoalpb.StoreAction
	// Networks: those the stack made before are kept as they are; the
	// others are made now.
	created := map[string]string{}
	var pending []*shoalpb.Network
	for _, n := range spec.Networks {
		if ex := tx.NetworkByName(n.Name); ex != nil {
			if !inStack(ex.GetSpec().GetLabels(), spec.Name) {
				return nil, status.Errorf(codes.AlreadyExists, "network %s already exists and is not part of stack %s", n.Name, spec.Name)
			}
			continue
		}
		net, err := s.allocateNetwork(tx, n, pending)
		if err != nil {
			return nil, prefixed(err, "network "+n.Name)
		}
		pending = append(pending, net)
		created[n.Name] = net.Id
		actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: net}})
	}

	// Services: new ones created, changed ones updated (as UpdateService
	// does), unchanged ones left alone.
	listed := map[string]bool{}
	final := map[string]*shoalpb.ServiceSpec{} // every service once written, by lower-cased name
	for _, svc := range tx.Services() {
		final[strings.ToLower(svc.GetSpec().GetName())] = svc.GetSpec()
	}
	for _, in := range spec.Services {
		svc := proto.Clone(in).(*shoalpb.ServiceSpec)
		listed[strings.ToLower(svc.Name)] = true
		cur := tx.ServiceByName(svc.Name)
		if cur != nil && !inStack(cur.GetSpec().GetLabels(), spec.Name) {
			return nil, status.Errorf(codes.AlreadyExists, "service %s already exists and is not part of stack %s", cur.GetSpec().GetName(), spec.Name)
		}
		selfID := ""
		if cur != nil {
			selfID = cur.Id
		}
		if err := resolveStackNetworks(tx, svc, selfID, created); err != nil {
			return nil, prefixed(err, "service "+svc.Name)
		}
		final[strings.ToLower(svc.Name)] = svc
		switch {
		case cur == nil:
			id, err := s.newID()
			if err != nil {
				return nil, err
			}
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Service{Service: newService(id, svc, now)}})
		case proto.Equal(cur.GetSpec(), svc):
		default:
			next, err := updatedService(cur, svc, now)
			if err != nil {
				return nil, prefixed(err, "service "+svc.Name)
			}
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_UPDATE, Target: &shoalpb.StoreAction_Service{Service: next}})
		}
	}
	if prune {
		var gone []*shoalpb.Service
		for _, svc := range tx.Services() {
			if inStack(svc.GetSpec().GetLabels(), spec.Name) && !listed[strings.ToLower(svc.GetSpec().GetName())] {
				gone = append(gone, svc)
			}
		}
		sort.Slice(gone, func(i, j int) bool { return gone[i].GetSpec().GetName() < gone[j].GetSpec().GetName() })
		for _, svc := range gone {
			delete(final, strings.ToLower(svc.GetSpec().GetName()))
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Service{Service: &shoalpb.Service{Id: svc.Id}}})
		}
	}
	if err := checkDependencies(spec, final); err != nil {
		return nil, err
	}

	// The stack, with the deploy appended to its history.
	cur := tx.StackByName(spec.Name)
	st := &shoalpb.Stack{Name: spec.Name, Meta: &shoalpb.Meta{CreatedAt: now, UpdatedAt: now}}
	kind := shoalpb.ActionKind_ACTION_KIND_CREATE
	if cur != nil {
		st = proto.Clone(cur).(*shoalpb.Stack)
		st.Meta = &shoalpb.Meta{Version: cur.GetMeta().GetVersion(), CreatedAt: cur.GetMeta().GetCreatedAt(), UpdatedAt: now}
		kind = shoalpb.ActionKind_ACTION_KIND_UPDATE
	} else {
		id, err := s.newID()
		if err != nil {
			return nil, err
		}
		st.Id = id
	}
	number := uint64(1)
	if n := len(st.Revisions); n > 0 {
		number = st.Revisions[n-1].GetNumber() + 1
	}
	st.Revisions = append(st.Revisions, &shoalpb.StackRevision{Number: number, CreatedAt: now, Spec: spec, Source: source})
	if n := len(st.Revisions); n > MaxStackRevisions {
		st.Revisions = slices.Clone(st.Revisions[n-MaxStackRevisions:])
	}
	st.Current = number
	actions = append(actions, &shoalpb.StoreAction{Kind: kind, Target: &shoalpb.StoreAction_Stack{Stack: st}})
	return actions, nil
}

// resolveStackNetworks resolves a stack service's networks as any
// service's (resolveServiceNetworks), except those this deploy creates:
// they are not stored yet, and created maps their names to their IDs.
func resolveStackNetworks(tx store.ReadTx, spec *shoalpb.ServiceSpec, selfID string, created map[string]string) error {
	all := spec.GetTask().GetNetworks()
	if len(created) == 0 || len(all) == 0 {
		return resolveServiceNetworks(tx, spec, selfID)
	}
	var stored []*shoalpb.NetworkAttachmentConfig
	for _, c := range all {
		if _, ok := created[c.Target]; !ok {
			stored = append(stored, c)
		}
	}
	spec.Task.Networks = stored
	err := resolveServiceNetworks(tx, spec, selfID)
	spec.Task.Networks = all
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range all {
		if id, ok := created[c.Target]; ok {
			c.Target = id
		}
		if seen[c.Target] {
			return invalid("invalid network %s: the service joins it twice", c.Target)
		}
		seen[c.Target] = true
	}
	return nil
}

// checkDependencies checks the depends_on of the deployed services against
// the services there will be (final, by lower-cased name): each names one,
// a job when the condition is a completion, and no chain of dependencies
// comes back to where it started (no service of a cycle could start).
func checkDependencies(spec *shoalpb.StackSpec, final map[string]*shoalpb.ServiceSpec) error {
	for _, svc := range spec.Services {
		for _, d := range svc.GetDependsOn() {
			target := final[strings.ToLower(d.GetService())]
			if target == nil {
				return invalid("service %s: it depends on service %s, which does not exist", svc.Name, d.GetService())
			}
			if d.GetCondition() == shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY && !isJobSpec(target) {
				return invalid("service %s: it waits for service %s to complete successfully, but %s is a %s service whose tasks do not complete; make it a replicated-job or global-job", svc.Name, d.GetService(), d.GetService(), modeName(target))
			}
		}
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var path []string
	var visit func(key string) error
	visit = func(key string) error {
		switch state[key] {
		case visiting:
			i := slices.Index(path, key)
			cycle := append(slices.Clone(path[i:]), key)
			for j, k := range cycle {
				cycle[j] = final[k].GetName()
			}
			return invalid("invalid depends_on: services depend on each other in a cycle (%s), so none of them could start", strings.Join(cycle, " -> "))
		case done:
			return nil
		}
		state[key] = visiting
		path = append(path, key)
		for _, d := range final[key].GetDependsOn() {
			if next := strings.ToLower(d.GetService()); final[next] != nil {
				if err := visit(next); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[key] = done
		return nil
	}
	for _, svc := range spec.Services {
		if err := visit(strings.ToLower(svc.Name)); err != nil {
			return err
		}
	}
	return nil
}

// GetStack returns a stack with its revisions.
func (s *Server) GetStack(ctx context.Context, req *shoalpb.GetStackRequest) (*shoalpb.GetStackResponse, error) {
	var st *shoalpb.Stack
	s.Store.View(func(tx store.ReadTx) { st = tx.StackByName(req.GetName()) })
	if st == nil {
		return nil, stackNotFound(req.GetName())
	}
	return &shoalpb.GetStackResponse{Stack: st}, nil
}

// ListStacks lists the stacks by name with how many services each has.
// The compose models kept in revisions are left out (GetStack has them).
func (s *Server) ListStacks(ctx context.Context, req *shoalpb.ListStacksRequest) (*shoalpb.ListStacksResponse, error) {
	resp := &shoalpb.ListStacksResponse{ServiceCounts: map[string]uint64{}}
	s.Store.View(func(tx store.ReadTx) {
		for _, st := range tx.Stacks() {
			resp.ServiceCounts[st.Name] = 0
			st = proto.Clone(st).(*shoalpb.Stack)
			for _, r := range st.Revisions {
				if r.Spec != nil {
					r.Spec.Compose = nil
				}
			}
			resp.Stacks = append(resp.Stacks, st)
		}
		for _, svc := range tx.Services() {
			name := svc.GetSpec().GetLabels()[StackNamespaceLabel]
			if _, ok := resp.ServiceCounts[name]; ok {
				resp.ServiceCounts[name]++
			}
		}
	})
	sort.Slice(resp.Stacks, func(i, j int) bool { return resp.Stacks[i].Name < resp.Stacks[j].Name })
	return resp, nil
}

// RemoveStack removes a stack's services, its networks and the stack
// itself in one write. A network of the stack that a service outside it
// joins makes the removal fail, and nothing is removed.
func (s *Server) RemoveStack(ctx context.Context, req *shoalpb.RemoveStackRequest) (*shoalpb.RemoveStackResponse, error) {
	name := req.GetName()
	unlock := s.lockNetworks()
	defer unlock()
	var actions []*shoalpb.StoreAction
	var err error
	s.Store.View(func(tx store.ReadTx) {
		var services []*shoalpb.Service
		others := map[string][]string{} // network ID → services outside the stack joining it
		for _, svc := range tx.Services() {
			if inStack(svc.GetSpec().GetLabels(), name) {
				services = append(services, svc)
				continue
			}
			for _, c := range svc.GetSpec().GetTask().GetNetworks() {
				others[c.GetTarget()] = append(others[c.GetTarget()], svc.GetSpec().GetName())
			}
		}
		var networks []*shoalpb.Network
		for _, n := range tx.Networks() {
			if inStack(n.GetSpec().GetLabels(), name) {
				networks = append(networks, n)
			}
		}
		st := tx.StackByName(name)
		if st == nil && len(services) == 0 && len(networks) == 0 {
			err = stackNotFound(name)
			return
		}
		sort.Slice(services, func(i, j int) bool { return services[i].GetSpec().GetName() < services[j].GetSpec().GetName() })
		sort.Slice(networks, func(i, j int) bool { return networks[i].GetSpec().GetName() < networks[j].GetSpec().GetName() })
		for _, n := range networks {
			if users := others[n.Id]; len(users) > 0 {
				sort.Strings(users)
				err = precondition("network %s of stack %s is in use by service %s, which is not part of the stack: remove it from the network first", n.GetSpec().GetName(), name, users[0])
				return
			}
		}
		for _, svc := range services {
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Service{Service: &shoalpb.Service{Id: svc.Id}}})
		}
		for _, n := range networks {
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{Id: n.Id}}})
		}
		if st != nil {
			actions = append(actions, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Stack{Stack: &shoalpb.Stack{Id: st.Id}}})
		}
	})
	if err != nil {
		return nil, err
	}
	if err := s.propose(ctx, actions...); err != nil {
		return nil, err
	}
	return &shoalpb.RemoveStackResponse{}, nil
}

// RollbackStack deploys an earlier revision again, as a new revision whose
// source says which one it restored. The stack then runs what that
// revision listed: services added since are removed.
func (s *Server) RollbackStack(ctx context.Context, req *shoalpb.RollbackStackRequest) (*shoalpb.RollbackStackResponse, error) {
	var cur *shoalpb.Stack
	s.Store.View(func(tx store.ReadTx) { cur = tx.StackByName(req.GetName()) })
	if cur == nil {
		return nil, stackNotFound(req.GetName())
	}
	target, err := rollbackTarget(cur, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	st, err := s.deployStack(ctx, target.GetSpec(), true, fmt.Sprintf("rollback to %d", target.GetNumber()))
	if err != nil {
		return nil, err
	}
	return &shoalpb.RollbackStackResponse{Stack: st}, nil
}

// rollbackTarget is the revision to roll back to: to, or the one before
// the current one when to is 0.
func rollbackTarget(st *shoalpb.Stack, to uint64) (*shoalpb.StackRevision, error) {
	revs := st.GetRevisions()
	if len(revs) == 0 {
		return nil, precondition("stack %s has no revisions", st.Name)
	}
	kept := fmt.Sprintf("revisions %d to %d are kept", revs[0].GetNumber(), revs[len(revs)-1].GetNumber())
	if len(revs) == 1 {
		kept = fmt.Sprintf("revision %d is kept", revs[0].GetNumber())
	}
	if to == 0 {
		i := slices.IndexFunc(revs, func(r *shoalpb.StackRevision) bool { return r.GetNumber() == st.GetCurrent() })
		if i <= 0 {
			return nil, precondition("stack %s has no revision before revision %d to roll back to (%s)", st.Name, st.GetCurrent(), kept)
		}
		return revs[i-1], nil
	}
	for _, r := range revs {
		if r.GetNumber() == to {
			return r, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "stack %s has no revision %d (%s)", st.Name, to, kept)
}
