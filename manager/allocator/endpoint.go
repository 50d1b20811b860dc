package allocator

import (
	"errors"
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// endpointPlan is the endpoint a service should have, what it holds, and
// what its previous endpoint held that it no longer needs.
type endpointPlan struct {
	endpoint *shoalpb.Endpoint
	hold     *serviceHold
	// drop is freed once the new endpoint is written: until then the
	// store still gives it to the service.
	drop *serviceHold
}

// NeedsEndpoint reports whether a service spec asks for an endpoint: it
// has an endpoint spec or joins networks.
func NeedsEndpoint(spec *shoalpb.ServiceSpec) bool {
	return spec.GetEndpoint() != nil || len(spec.GetTask().GetNetworks()) > 0
}

// planEndpoint works out the endpoint svc should have: its published
// ports (a port asked as 0 keeps the one assigned before, or gets one from
// the dynamic range) and, in VIP mode, a VIP on every network it joins
// (the ingress network too when it publishes ports on the routing mesh).
// What the service holds already is kept. New VIPs and ports are taken
// from the state; on failure they are given back and the error names
// what ran out or conflicts. serviceName names other services in errors.
func (s *state) planEndpoint(svc *shoalpb.Service, serviceName func(id string) string) (*endpointPlan, error) {
	id := svc.GetId()
	old := s.services[id]
	spec := svc.GetSpec()
	if !NeedsEndpoint(spec) {
		return &endpointPlan{drop: old}, nil
	}
	epSpec := spec.GetEndpoint()
	ep := &shoalpb.Endpoint{Spec: &shoalpb.EndpointSpec{}}
	if epSpec != nil {
		ep.Spec = proto.Clone(epSpec).(*shoalpb.EndpointSpec)
	}
	hold := &serviceHold{}
	var freshPorts []PortKey
	var freshVIPs []held
	fail := func(err error) (*endpointPlan, error) {
		for _, k := range freshPorts {
			s.ports.Release(k, id)
		}
		for _, h := range freshVIPs {
			s.release(h)
		}
		return nil, err
	}

	for _, p := range epSpec.GetPorts() {
		pc := proto.Clone(p).(*shoalpb.PortConfig)
		ep.Ports = append(ep.Ports, pc)
		if p.GetPublishMode() != shoalpb.PortConfig_PUBLISH_MODE_INGRESS {
			continue
		}
		if p.GetPublishedPort() == 0 {
			if k, ok := s.previousPort(svc, p, hold); ok {
				pc.PublishedPort = k.Port
				hold.ports = append(hold.ports, k)
				continue
			}
			port, err := s.ports.Allocate(p.GetProtocol(), id)
			if err != nil {
				return fail(err)
			}
			k := PortKey{Protocol: p.GetProtocol(), Port: port}
			pc.PublishedPort = port
			freshPorts = append(freshPorts, k)
			hold.ports = append(hold.ports, k)
			continue
		}
		k := PortKey{Protocol: p.GetProtocol(), Port: p.GetPublishedPort()}
		if hold.holdsPort(k) {
			return fail(fmt.Errorf("port %s is published twice", k))
		}
		if !old.holdsPort(k) {
			if err := s.ports.Reserve(k, id); err != nil {
				var inUse *PortInUseError
				if errors.As(err, &inUse) {
					return fail(fmt.Errorf("port %s is already in use by service %s", k, serviceName(inUse.Owner)))
				}
				return fail(err)
			}
			freshPorts = append(freshPorts, k)
		}
		hold.ports = append(hold.ports, k)
	}

	if ep.Spec.GetMode() == shoalpb.EndpointSpec_MODE_VIP {
		var want []string
		seen := map[string]bool{}
		for _, c := range spec.GetTask().GetNetworks() {
			if !seen[c.GetTarget()] {
				seen[c.GetTarget()] = true
				want = append(want, c.GetTarget())
			}
		}
		if k, ok := ingressPort(ep.Ports); ok {
			ing := s.ingress()
			if ing == nil {
				return fail(fmt.Errorf("port %s cannot be published on the routing mesh: the swarm has no ingress network", k))
			}
			if !seen[ing.net.Id] {
				want = append(want, ing.net.Id)
			}
		}
		for _, nid := range want {
			n := s.networks[nid]
			if n == nil {
				return fail(fmt.Errorf("network %s not found", nid))
			}
			addr, ok := old.vipOn(nid)
			if !ok {
				var err error
				if addr, err = n.pool.Allocate(); err != nil {
					return fail(fmt.Errorf("network %s: %w", n.name(), err))
				}
				freshVIPs = append(freshVIPs, held{network: nid, addr: addr})
			}
			hold.vips = append(hold.vips, held{network: nid, addr: addr})
			ep.VirtualIps = append(ep.VirtualIps, &shoalpb.VirtualIP{NetworkId: nid, Addr: netip.PrefixFrom(addr, n.pool.IPAM().Subnet.Bits()).String()})
		}
	}

	drop := &serviceHold{}
	if old != nil {
		for _, v := range old.vips {
			if a, ok := hold.vipOn(v.network); !ok || a != v.addr {
				drop.vips = append(drop.vips, v)
			}
		}
		for _, k := range old.ports {
			if !hold.holdsPort(k) {
				drop.ports = append(drop.ports, k)
			}
		}
	}
	return &endpointPlan{endpoint: ep, hold: hold, drop: drop}, nil
}

// previousPort returns the published port the service's current endpoint
// gives a port config like p (same name, protocol, target and mode), when
// the service still holds it and the new endpoint does not use it yet.
func (s *state) previousPort(svc *shoalpb.Service, p *shoalpb.PortConfig, taken *serviceHold) (PortKey, bool) {
	old := s.services[svc.GetId()]
	for _, q := range svc.GetEndpoint().GetPorts() {
		if q.GetName() != p.GetName() || q.GetProtocol() != p.GetProtocol() || q.GetTargetPort() != p.GetTargetPort() ||
			q.GetPublishMode() != shoalpb.PortConfig_PUBLISH_MODE_INGRESS || q.GetPublishedPort() == 0 {
			continue
		}
		k := PortKey{Protocol: q.GetProtocol(), Port: q.GetPublishedPort()}
		if old.holdsPort(k) && !taken.holdsPort(k) && !explicitlyPublished(svc.GetSpec(), k) {
			return k, true
		}
	}
	return PortKey{}, false
}

// explicitlyPublished reports whether spec asks for port k by number.
func explicitlyPublished(spec *shoalpb.ServiceSpec, k PortKey) bool {
	for _, p := range spec.GetEndpoint().GetPorts() {
		if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_INGRESS && p.GetProtocol() == k.Protocol && p.GetPublishedPort() == k.Port {
			return true
		}
	}
	return false
}

// commit makes a plan the service's holding once its endpoint is written
// (or needed no write): what the old endpoint held and the new does not is
// freed. It reports whether anything was freed.
func (s *state) commit(id string, p *endpointPlan) bool {
	freed := false
	if p.drop != nil {
		s.releaseServiceHold(id, p.drop)
		freed = len(p.drop.vips) > 0 || len(p.drop.ports) > 0
	}
	if p.hold == nil || (len(p.hold.vips) == 0 && len(p.hold.ports) == 0) {
		delete(s.services, id)
	} else {
		s.services[id] = p.hold
	}
	return freed
}
