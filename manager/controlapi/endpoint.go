package controlapi

import (
	"errors"
	"regexp"
	"sort"
	"strconv"

	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

var networkAliasRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// MaxNetworkAliasLength bounds network aliases (a DNS name).
const MaxNetworkAliasLength = 253

func formatUint(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// validateEndpointSpec checks what a service spec asks of networks that
// needs no store: the networks its tasks join (a target each, valid
// aliases) and its endpoint (mode, ports in range with a target, no port
// published twice, no routing-mesh port with DNS round robin, as docker).
func validateEndpointSpec(spec *shoalpb.ServiceSpec) error {
	for _, c := range spec.GetTask().GetNetworks() {
		if c.GetTarget() == "" {
			return invalid("invalid network attachment: the network is required")
		}
		for _, a := range c.GetAliases() {
			if len(a) > MaxNetworkAliasLength || !networkAliasRE.MatchString(a) {
				return invalid("invalid network alias %q for network %s: aliases are letters, digits, '.', '_' and '-', starting with a letter or digit", a, c.GetTarget())
			}
		}
	}
	ep := spec.GetEndpoint()
	if ep == nil {
		return nil
	}
	if _, ok := shoalpb.EndpointSpec_Mode_name[int32(ep.Mode)]; !ok {
		return invalid("invalid endpoint mode %d: must be vip or dnsrr", ep.Mode)
	}
	published := map[allocator.PortKey]bool{}
	for _, p := range ep.GetPorts() {
		if _, ok := shoalpb.PortConfig_Protocol_name[int32(p.Protocol)]; !ok {
			return invalid("invalid port protocol %d: must be tcp or udp", p.Protocol)
		}
		if _, ok := shoalpb.PortConfig_PublishMode_name[int32(p.PublishMode)]; !ok {
			return invalid("invalid publish mode %d for port %s: must be ingress or host", p.PublishMode, portWord(p))
		}
		switch {
		case p.TargetPort == 0:
			return invalid("invalid port %s: the target port is required", portWord(p))
		case p.TargetPort > 65535:
			return invalid("invalid target port %d: must be between 1 and 65535", p.TargetPort)
		case p.PublishedPort > 65535:
			return invalid("invalid published port %d: must be between 1 and 65535 (or 0 to have one assigned)", p.PublishedPort)
		}
		if ep.Mode == shoalpb.EndpointSpec_MODE_DNSRR && p.PublishMode == shoalpb.PortConfig_PUBLISH_MODE_INGRESS {
			return invalid("invalid port %s: ports published on the routing mesh (mode=ingress) cannot be used with endpoint mode dnsrr; publish it with mode=host", portWord(p))
		}
		if p.PublishedPort == 0 {
			continue
		}
		k := allocator.PortKey{Protocol: p.Protocol, Port: p.PublishedPort}
		if published[k] {
			return invalid("invalid published port %s: it is published twice", k)
		}
		published[k] = true
	}
	return nil
}

// resolveServiceNetworks checks a spec's networks and ports against the
// store, in place: the networks its tasks join, given by name, ID or ID
// prefix, become IDs; unknown, ambiguous and repeated networks and the
// ingress network are refused; ports published on the routing mesh need
// the ingress network and must not be another service's. selfID is the
// service being updated, "" for a new one.
func resolveServiceNetworks(tx store.ReadTx, spec *shoalpb.ServiceSpec, selfID string) error {
	seen := map[string]bool{}
	for _, c := range spec.GetTask().GetNetworks() {
		n, err := tx.FindNetwork(c.Target)
		switch {
		case errors.Is(err, store.ErrNotExist):
			return invalid("network %s not found", c.Target)
		case err != nil:
			return invalid("%v", err)
		case n.GetSpec().GetIngress():
			return invalid("invalid network %s: services cannot join the ingress network; publish a port to use the routing mesh", c.Target)
		case seen[n.Id]:
			return invalid("invalid network %s: the service joins it twice", c.Target)
		}
		seen[n.Id] = true
		c.Target = n.Id
	}
	mesh := map[allocator.PortKey]bool{}
	var first *shoalpb.PortConfig
	for _, p := range spec.GetEndpoint().GetPorts() {
		if p.PublishMode != shoalpb.PortConfig_PUBLISH_MODE_INGRESS {
			continue
		}
		if first == nil {
			first = p
		}
		if p.PublishedPort != 0 {
			mesh[allocator.PortKey{Protocol: p.Protocol, Port: p.PublishedPort}] = true
		}
	}
	if first == nil {
		return nil
	}
	hasIngress := false
	for _, n := range tx.Networks() {
		hasIngress = hasIngress || n.GetSpec().GetIngress()
	}
	if !hasIngress {
		return precondition("port %s cannot be published on the routing mesh: the swarm has no ingress network; publish it with mode=host", portWord(first))
	}
	if len(mesh) == 0 {
		return nil
	}
	others := tx.Services()
	sort.Slice(others, func(i, j int) bool { return others[i].GetSpec().GetName() < others[j].GetSpec().GetName() })
	for _, o := range others {
		if o.Id == selfID {
			continue
		}
		// The ports assigned, and those asked for and not assigned yet.
		for _, ports := range [][]*shoalpb.PortConfig{o.GetEndpoint().GetPorts(), o.GetSpec().GetEndpoint().GetPorts()} {
			for _, p := range ports {
				k := allocator.PortKey{Protocol: p.GetProtocol(), Port: p.GetPublishedPort()}
				if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_INGRESS && mesh[k] {
					return invalid("port %s is already in use by service %s", k, o.GetSpec().GetName())
				}
			}
		}
	}
	return nil
}

// resolveNetworks is resolveServiceNetworks on the current store.
func (s *Server) resolveNetworks(spec *shoalpb.ServiceSpec, selfID string) error {
	var err error
	s.Store.View(func(tx store.ReadTx) { err = resolveServiceNetworks(tx, spec, selfID) })
	return err
}
