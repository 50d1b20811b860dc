package controlapi

import (
	"context"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// MaxNetworkNameLength bounds network names.
const MaxNetworkNameLength = 63

// NetworkDriver is the only network driver.
const NetworkDriver = "overlay"

var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// lockNetworks serialises network allocation on the leader. Hold it from
// the store read handed to allocateNetwork until the write of the networks
// it returned is applied: two writers then never pick the same VNI or
// overlapping subnets (the store's name index catches equal names).
func (s *Server) lockNetworks() (unlock func()) {
	s.networkMu.Lock()
	return s.networkMu.Unlock
}

// allocateNetwork validates spec and returns a new network made from it,
// with its ID, its VNI and its subnet and gateway allocated: unique among
// the networks of tx and of pending (networks allocated for the same write
// and not stored yet). A subnet the spec gives must not overlap theirs;
// otherwise one is carved from the cluster's default address pools.
// Callers hold lockNetworks (see there). Errors are gRPC statuses naming
// the offending value: InvalidArgument for a bad spec, AlreadyExists for a
// name in use, ResourceExhausted when no subnet or VNI is left.
func (s *Server) allocateNetwork(tx store.ReadTx, spec *shoalpb.NetworkSpec, pending []*shoalpb.Network) (*shoalpb.Network, error) {
	if spec == nil {
		return nil, invalid("network spec is required")
	}
	spec = proto.Clone(spec).(*shoalpb.NetworkSpec)
	if err := validateNetworkName(spec.Name); err != nil {
		return nil, err
	}
	switch d := strings.ToLower(strings.TrimSpace(spec.Driver)); d {
	case "", NetworkDriver:
		spec.Driver = NetworkDriver
	default:
		return nil, invalid("invalid network driver %q: only %q networks are supported", spec.Driver, NetworkDriver)
	}
	if err := validateLabels("network label", spec.Labels); err != nil {
		return nil, err
	}
	existing := append(tx.Networks(), pending...)
	for _, n := range existing {
		if n.GetSpec().GetName() == spec.Name {
			return nil, networkNameTaken(spec.Name)
		}
	}
	if spec.Ingress {
		if spec.Attachable {
			return nil, invalid("invalid network %s: the ingress network cannot be attachable", spec.Name)
		}
		for _, n := range existing {
			if n.GetSpec().GetIngress() {
				return nil, invalid("invalid network %s: the swarm already has an ingress network (%s)", spec.Name, n.GetSpec().GetName())
			}
		}
	}
	ipam, err := allocator.ParseIPAM(spec.Ipam)
	if err != nil {
		return nil, invalid("%v", err)
	}
	taken := make([]netip.Prefix, 0, len(existing))
	used := map[uint32]bool{}
	for _, n := range existing {
		used[n.GetVni()] = true
		p, err := netip.ParsePrefix(n.GetIpam().GetSubnet())
		if err != nil {
			continue
		}
		if ipam.Subnet.IsValid() && p.Overlaps(ipam.Subnet) {
			return nil, invalid("subnet %s overlaps network %s (%s)", ipam.Subnet, n.GetSpec().GetName(), p)
		}
		taken = append(taken, p)
	}
	// A removed network's VNI and subnet stay taken while tasks attached
	// to it have not shut down (a stack's networks go in the same write as
	// its services): nodes still have its sandbox and routes.
	for _, a := range lingeringAttachments(tx, existing) {
		used[a.GetVni()] = true
		p, err := netip.ParsePrefix(a.GetSubnet())
		if err != nil {
			continue
		}
		if ipam.Subnet.IsValid() && p.Overlaps(ipam.Subnet) {
			return nil, precondition("subnet %s overlaps removed network %s (%s), whose tasks have not shut down yet", ipam.Subnet, a.GetNetworkName(), p)
		}
		taken = append(taken, p)
	}
	if ipam.Subnet.IsValid() {
		spec.Ipam = normalizedIPAM(spec.Ipam, ipam)
	} else {
		spec.Ipam = nil
		cfg, err := allocator.ClusterNetworkConfig(tx.Cluster())
		if err != nil {
			return nil, status.Errorf(codes.Internal, "the cluster's network configuration: %v", err)
		}
		subnet, err := allocator.NextSubnet(cfg.Pools, cfg.SubnetSize, taken)
		if err != nil {
			return nil, status.Errorf(codes.ResourceExhausted, "%v: give network %s a subnet", err, spec.Name)
		}
		ipam = allocator.NewIPAM(subnet)
	}
	vni, err := allocator.NextVNI(used)
	if err != nil {
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now()
	return &shoalpb.Network{
		Id:   id,
		Meta: &shoalpb.Meta{CreatedAt: now, UpdatedAt: now},
		Spec: spec,
		Vni:  vni,
		Ipam: ipam.Proto(),
	}, nil
}

// lingeringAttachments returns one attachment per network that tasks
// still holding addresses are attached to but that is not among nets.
func lingeringAttachments(tx store.ReadTx, nets []*shoalpb.Network) []*shoalpb.NetworkAttachment {
	known := make(map[string]bool, len(nets))
	for _, n := range nets {
		known[n.Id] = true
	}
	var out []*shoalpb.NetworkAttachment
	for _, t := range tx.Tasks() {
		if !allocator.HoldsAddresses(t) {
			continue
		}
		for _, a := range t.GetNetworks() {
			if !known[a.GetNetworkId()] {
				known[a.GetNetworkId()] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// normalizedIPAM writes the addressing a user gave in canonical form,
// keeping unset what was not given.
func normalizedIPAM(given *shoalpb.IPAMConfig, ipam allocator.IPAM) *shoalpb.IPAMConfig {
	out := &shoalpb.IPAMConfig{Subnet: ipam.Subnet.String()}
	if strings.TrimSpace(given.GetGateway()) != "" {
		out.Gateway = ipam.Gateway.String()
	}
	if ipam.Range.IsValid() {
		out.IpRange = ipam.Range.String()
	}
	return out
}

func validateNetworkName(name string) error {
	if name == "" {
		return invalid("network name is required")
	}
	if len(name) > MaxNetworkNameLength || !networkNameRE.MatchString(name) {
		return invalid("invalid network name %q: names must be at most %d characters of letters, digits, '.', '_' and '-', starting with a letter or digit", name, MaxNetworkNameLength)
	}
	return nil
}

func networkNameTaken(name string) error {
	return status.Errorf(codes.AlreadyExists, "network with name %s already exists", name)
}

// CreateNetwork validates a spec and stores a new overlay network made
// from it, with its VNI and subnet allocated.
func (s *Server) CreateNetwork(ctx context.Context, req *shoalpb.CreateNetworkRequest) (*shoalpb.CreateNetworkResponse, error) {
	unlock := s.lockNetworks()
	defer unlock()
	var n *shoalpb.Network
	var err error
	s.Store.View(func(tx store.ReadTx) { n, err = s.allocateNetwork(tx, req.GetSpec(), nil) })
	if err != nil {
		return nil, err
	}
	err = s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Network{Network: n}})
	if status.Code(err) == codes.AlreadyExists {
		return nil, networkNameTaken(n.Spec.Name)
	}
	if err != nil {
		return nil, err
	}
	out, err := s.findNetwork(n.Id)
	if err != nil {
		return nil, err
	}
	return &shoalpb.CreateNetworkResponse{Network: out}, nil
}

func (s *Server) findNetwork(ref string) (*shoalpb.Network, error) {
	var n *shoalpb.Network
	var err error
	s.Store.View(func(tx store.ReadTx) { n, err = tx.FindNetwork(ref) })
	if err != nil {
		return nil, storeError(err)
	}
	return n, nil
}

// GetNetwork returns one network by ID, unique ID prefix or name.
func (s *Server) GetNetwork(ctx context.Context, req *shoalpb.GetNetworkRequest) (*shoalpb.GetNetworkResponse, error) {
	n, err := s.findNetwork(req.GetNetworkRef())
	if err != nil {
		return nil, err
	}
	return &shoalpb.GetNetworkResponse{Network: n}, nil
}

var networkFilters = map[string]bool{"id": true, "name": true, "label": true, "driver": true, "scope": true}

// NetworkScope is the scope every network has: the whole swarm.
const NetworkScope = "swarm"

// ListNetworks lists the networks matching the filters, sorted by name.
func (s *Server) ListNetworks(ctx context.Context, req *shoalpb.ListNetworksRequest) (*shoalpb.ListNetworksResponse, error) {
	for _, k := range sortedFilterKeys(req.GetFilters()) {
		if !networkFilters[k] {
			return nil, invalid("invalid filter '%s'", k)
		}
	}
	resp := &shoalpb.ListNetworksResponse{}
	s.Store.View(func(tx store.ReadTx) {
		for _, n := range tx.Networks() {
			if matchNetwork(n, req.GetFilters()) {
				resp.Networks = append(resp.Networks, n)
			}
		}
	})
	sort.Slice(resp.Networks, func(i, j int) bool {
		a, b := resp.Networks[i], resp.Networks[j]
		if a.GetSpec().GetName() != b.GetSpec().GetName() {
			return a.GetSpec().GetName() < b.GetSpec().GetName()
		}
		return a.Id < b.Id
	})
	return resp, nil
}

// matchNetwork applies docker's network filters: id is a prefix, name a
// part of the name, label a key or key=value, driver and scope exact.
func matchNetwork(n *shoalpb.Network, filters map[string]*shoalpb.FilterValues) bool {
	for k, fv := range filters {
		if len(fv.GetValues()) == 0 {
			continue
		}
		ok := false
		for _, v := range fv.Values {
			switch k {
			case "id":
				ok = strings.HasPrefix(n.Id, v)
			case "name":
				ok = strings.Contains(n.GetSpec().GetName(), v)
			case "label":
				ok = matchLabel(n.GetSpec().GetLabels(), v)
			case "driver":
				ok = n.GetSpec().GetDriver() == v
			case "scope":
				ok = v == NetworkScope
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

// RemoveNetwork deletes a network no service or running task uses.
func (s *Server) RemoveNetwork(ctx context.Context, req *shoalpb.RemoveNetworkRequest) (*shoalpb.RemoveNetworkResponse, error) {
	unlock := s.lockNetworks()
	defer unlock()
	var n *shoalpb.Network
	var err error
	s.Store.View(func(tx store.ReadTx) {
		if n, err = tx.FindNetwork(req.GetNetworkRef()); err != nil {
			err = storeError(err)
			return
		}
		err = networkInUse(tx, n)
	})
	if err != nil {
		return nil, err
	}
	if err := s.propose(ctx, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Network{Network: &shoalpb.Network{Id: n.Id}}}); err != nil {
		return nil, err
	}
	return &shoalpb.RemoveNetworkResponse{}, nil
}

// networkInUse refuses the removal of a network a service joins, that a
// task not yet shut down is attached to (or will be, when allocated), or,
// for the ingress network, that a service publishes ports on.
func networkInUse(tx store.ReadTx, n *shoalpb.Network) error {
	name := n.GetSpec().GetName()
	services := tx.Services()
	sort.Slice(services, func(i, j int) bool { return services[i].GetSpec().GetName() < services[j].GetSpec().GetName() })
	for _, svc := range services {
		for _, c := range svc.GetSpec().GetTask().GetNetworks() {
			if c.GetTarget() == n.Id {
				return precondition("network %s is in use by service %s", name, svc.GetSpec().GetName())
			}
		}
		if n.GetSpec().GetIngress() {
			for _, p := range svc.GetSpec().GetEndpoint().GetPorts() {
				if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_INGRESS {
					return precondition("network %s is in use by service %s, which publishes port %s on the routing mesh", name, svc.GetSpec().GetName(), portWord(p))
				}
			}
		}
	}
	tasks := tx.Tasks()
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Id < tasks[j].Id })
	for _, t := range tasks {
		if taskUsesNetwork(t, n.Id) {
			svc := t.GetServiceName()
			if svc == "" {
				svc = t.GetServiceId()
			}
			return precondition("network %s is in use by service %s (task %s has not shut down yet)", name, svc, t.Id)
		}
	}
	return nil
}

// taskUsesNetwork reports whether t holds an address on network id, or
// waits for one.
func taskUsesNetwork(t *shoalpb.Task, id string) bool {
	if allocator.HoldsAddresses(t) {
		for _, a := range t.GetNetworks() {
			if a.GetNetworkId() == id {
				return true
			}
		}
	}
	if t.GetStatus().GetState() == shoalpb.TaskState_TASK_STATE_NEW && t.GetDesiredState() <= shoalpb.TaskState_TASK_STATE_RUNNING {
		for _, c := range t.GetSpec().GetNetworks() {
			if c.GetTarget() == id {
				return true
			}
		}
	}
	return false
}

// portWord words a published port as docker's tables do: 8080:80/tcp.
func portWord(p *shoalpb.PortConfig) string {
	proto := allocator.ProtocolName(p.GetProtocol())
	if p.GetPublishedPort() == 0 {
		return formatUint(p.GetTargetPort()) + "/" + proto
	}
	return formatUint(p.GetPublishedPort()) + ":" + formatUint(p.GetTargetPort()) + "/" + proto
}
