package main

import (
	"encoding/csv"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// A service's networks and published ports: the flags of service create,
// and how service ls and inspect show them.

// networkFlagValue collects --network NAME and --network
// name=NAME,alias=A,… entries.
type networkFlagValue struct {
	attachments []*shoalpb.NetworkAttachmentConfig
	raw         []string
}

func (n *networkFlagValue) String() string { return listString(n.raw) }
func (n *networkFlagValue) Type() string   { return "network" }

var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (n *networkFlagValue) Set(s string) error {
	a, err := parseNetworkAttachment(s)
	if err != nil {
		return err
	}
	n.attachments = append(n.attachments, a)
	n.raw = append(n.raw, s)
	return nil
}

// parseNetworkAttachment reads docker's --network syntax: a network name
// or ID, or comma-separated name=…(or target=…) and alias=… fields.
func parseNetworkAttachment(s string) (*shoalpb.NetworkAttachmentConfig, error) {
	if !strings.Contains(s, "=") {
		if strings.TrimSpace(s) == "" || strings.Contains(s, ",") {
			return nil, fmt.Errorf("invalid network %q: give a network name or ID, or name=NETWORK[,alias=ALIAS]", s)
		}
		return &shoalpb.NetworkAttachmentConfig{Target: strings.TrimSpace(s)}, nil
	}
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return nil, fmt.Errorf("invalid network %q: %v", s, err)
	}
	a := &shoalpb.NetworkAttachmentConfig{}
	for _, f := range fields {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("invalid network field %q: must be a key=value pair", f)
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "name", "target":
			a.Target = strings.TrimSpace(val)
		case "alias":
			if !aliasRE.MatchString(val) {
				return nil, fmt.Errorf("invalid network alias %q: aliases are letters, digits, '.', '_' and '-', starting with a letter or digit", val)
			}
			a.Aliases = append(a.Aliases, val)
		default:
			return nil, fmt.Errorf("invalid network field %q: unknown key %q (name and alias are supported)", f, key)
		}
	}
	if a.Target == "" {
		return nil, fmt.Errorf("invalid network %q: the network name is required (name=NETWORK)", s)
	}
	return a, nil
}

// portFlagValue collects --publish entries: docker's short syntax
// [PUBLISHED:]TARGET[/PROTOCOL] and its long syntax
// published=P,target=T,protocol=tcp|udp,mode=ingress|host.
type portFlagValue struct {
	ports []*shoalpb.PortConfig
	raw   []string
}

func (p *portFlagValue) String() string { return listString(p.raw) }
func (p *portFlagValue) Type() string   { return "port" }

func (p *portFlagValue) Set(s string) error {
	pc, err := parsePort(s)
	if err != nil {
		return err
	}
	p.ports = append(p.ports, pc)
	p.raw = append(p.raw, s)
	return nil
}

var (
	protocols = map[string]shoalpb.PortConfig_Protocol{
		"tcp": shoalpb.PortConfig_PROTOCOL_TCP,
		"udp": shoalpb.PortConfig_PROTOCOL_UDP,
	}
	publishModes = map[string]shoalpb.PortConfig_PublishMode{
		"ingress": shoalpb.PortConfig_PUBLISH_MODE_INGRESS,
		"host":    shoalpb.PortConfig_PUBLISH_MODE_HOST,
	}
	endpointModes = map[string]shoalpb.EndpointSpec_Mode{
		"vip":   shoalpb.EndpointSpec_MODE_VIP,
		"dnsrr": shoalpb.EndpointSpec_MODE_DNSRR,
	}
)

// portNumber reads a port number; zero is allowed only when allowZero.
func portNumber(what, s string, allowZero bool) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || v > 65535 || (v == 0 && !allowZero) {
		if strings.Contains(s, "-") {
			return 0, fmt.Errorf("invalid %s port %q: port ranges are not supported", what, s)
		}
		return 0, fmt.Errorf("invalid %s port %q: must be a number between 1 and 65535", what, s)
	}
	return uint32(v), nil
}

func parsePort(s string) (*shoalpb.PortConfig, error) {
	if strings.Contains(s, "=") {
		return parseLongPort(s)
	}
	spec, proto := s, "tcp"
	if i := strings.LastIndex(s, "/"); i >= 0 {
		spec, proto = s[:i], strings.ToLower(s[i+1:])
	}
	pc := &shoalpb.PortConfig{}
	var ok bool
	if pc.Protocol, ok = protocols[proto]; !ok {
		return nil, fmt.Errorf("invalid port %q: unknown protocol %q (tcp or udp)", s, proto)
	}
	parts := strings.Split(spec, ":")
	var err error
	switch len(parts) {
	case 1:
		pc.TargetPort, err = portNumber("target", parts[0], false)
	case 2:
		if pc.PublishedPort, err = portNumber("published", parts[0], false); err == nil {
			pc.TargetPort, err = portNumber("target", parts[1], false)
		}
	default:
		return nil, fmt.Errorf("invalid port %q: must be [PUBLISHED:]TARGET[/PROTOCOL] (a host IP is not supported)", s)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid port %q: %v", s, err)
	}
	return pc, nil
}

func parseLongPort(s string) (*shoalpb.PortConfig, error) {
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return nil, fmt.Errorf("invalid port %q: %v", s, err)
	}
	pc := &shoalpb.PortConfig{}
	for _, f := range fields {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("invalid port field %q: must be a key=value pair", f)
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "published":
			pc.PublishedPort, err = portNumber("published", val, false)
		case "target":
			pc.TargetPort, err = portNumber("target", val, false)
		case "protocol":
			var ok bool
			if pc.Protocol, ok = protocols[strings.ToLower(val)]; !ok {
				err = fmt.Errorf("invalid protocol %q: must be tcp or udp", val)
			}
		case "mode":
			var ok bool
			if pc.PublishMode, ok = publishModes[strings.ToLower(val)]; !ok {
				err = fmt.Errorf("invalid publish mode %q: must be ingress or host", val)
			}
		default:
			err = fmt.Errorf("unknown key %q (published, target, protocol and mode are supported)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("invalid port field %q: %v", f, err)
		}
	}
	if pc.TargetPort == 0 {
		return nil, fmt.Errorf("invalid port %q: the target port is required (target=PORT)", s)
	}
	return pc, nil
}

// endpointSpec returns the endpoint spec the flags ask for, or nil.
func endpointSpec(mode *enumValue, modeChanged bool, ports []*shoalpb.PortConfig) *shoalpb.EndpointSpec {
	if !modeChanged && len(ports) == 0 {
		return nil
	}
	return &shoalpb.EndpointSpec{Mode: endpointModes[mode.value], Ports: ports}
}

// Docker's JSON shapes of a service's networks and endpoint.

type networkAttachmentConfigJSON struct {
	Target  string
	Aliases []string `json:",omitempty"`
}

type endpointSpecJSON struct {
	Mode  string
	Ports []portConfigJSON `json:",omitempty"`
}

type portConfigJSON struct {
	Name          string `json:",omitempty"`
	Protocol      string
	TargetPort    uint32
	PublishedPort uint32
	PublishMode   string
}

type endpointJSON struct {
	Spec       endpointSpecJSON
	Ports      []portConfigJSON `json:",omitempty"`
	VirtualIPs []virtualIPJSON  `json:",omitempty"`
}

type virtualIPJSON struct {
	NetworkID string
	Addr      string
}

func newNetworksJSON(cs []*shoalpb.NetworkAttachmentConfig) []networkAttachmentConfigJSON {
	var out []networkAttachmentConfigJSON
	for _, c := range cs {
		out = append(out, networkAttachmentConfigJSON{Target: c.GetTarget(), Aliases: c.GetAliases()})
	}
	return out
}

func newEndpointSpecJSON(s *shoalpb.EndpointSpec) *endpointSpecJSON {
	if s == nil {
		return nil
	}
	return &endpointSpecJSON{Mode: endpointModeWord(s.GetMode()), Ports: newPortsJSON(s.GetPorts())}
}

func newPortsJSON(ports []*shoalpb.PortConfig) []portConfigJSON {
	var out []portConfigJSON
	for _, p := range ports {
		out = append(out, portConfigJSON{
			Name:          p.GetName(),
			Protocol:      protocolWord(p.GetProtocol()),
			TargetPort:    p.GetTargetPort(),
			PublishedPort: p.GetPublishedPort(),
			PublishMode:   enumWord(p.GetPublishMode().String(), "PUBLISH_MODE_"),
		})
	}
	return out
}

func newEndpointJSON(e *shoalpb.Endpoint) *endpointJSON {
	if e == nil {
		return nil
	}
	out := &endpointJSON{Ports: newPortsJSON(e.GetPorts())}
	if s := newEndpointSpecJSON(e.GetSpec()); s != nil {
		out.Spec = *s
	} else {
		out.Spec.Mode = "vip"
	}
	for _, v := range e.GetVirtualIps() {
		out.VirtualIPs = append(out.VirtualIPs, virtualIPJSON{NetworkID: v.GetNetworkId(), Addr: v.GetAddr()})
	}
	return out
}

func endpointModeWord(m shoalpb.EndpointSpec_Mode) string { return enumWord(m.String(), "MODE_") }

func protocolWord(p shoalpb.PortConfig_Protocol) string { return enumWord(p.String(), "PROTOCOL_") }

// servicePorts is the PORTS column of service ls: the ports published on
// the routing mesh, as docker shows them ("*:8080->80/tcp"), runs of
// consecutive ports joined into ranges ("*:8080-8081->80-81/tcp"). Before
// the managers assigned the ports, the ones asked for by number show.
func servicePorts(s *shoalpb.Service) string {
	ports := s.GetEndpoint().GetPorts()
	if s.GetEndpoint() == nil {
		ports = s.GetSpec().GetEndpoint().GetPorts()
	}
	var mesh []*shoalpb.PortConfig
	for _, p := range ports {
		if p.GetPublishMode() == shoalpb.PortConfig_PUBLISH_MODE_INGRESS && p.GetPublishedPort() != 0 {
			mesh = append(mesh, p)
		}
	}
	sort.SliceStable(mesh, func(i, j int) bool {
		a, b := mesh[i], mesh[j]
		if pa, pb := protocolWord(a.GetProtocol()), protocolWord(b.GetProtocol()); pa != pb {
			return pa < pb
		}
		return a.GetPublishedPort() < b.GetPublishedPort()
	})
	var out []string
	for i := 0; i < len(mesh); {
		j := i + 1
		for j < len(mesh) && mesh[j].GetProtocol() == mesh[i].GetProtocol() &&
			mesh[j].GetPublishedPort() == mesh[j-1].GetPublishedPort()+1 && mesh[j].GetTargetPort() == mesh[j-1].GetTargetPort()+1 {
			j++
		}
		first, last := mesh[i], mesh[j-1]
		if i == j-1 {
			out = append(out, fmt.Sprintf("*:%d->%d/%s", first.GetPublishedPort(), first.GetTargetPort(), protocolWord(first.GetProtocol())))
		} else {
			out = append(out, fmt.Sprintf("*:%d-%d->%d-%d/%s", first.GetPublishedPort(), last.GetPublishedPort(), first.GetTargetPort(), last.GetTargetPort(), protocolWord(first.GetProtocol())))
		}
		i = j
	}
	return strings.Join(out, ", ")
}

// networkNames maps network IDs to names for --pretty output; it is empty
// when the networks cannot be listed (IDs are shown then).
func networkNames(cmd *cobra.Command, c *client) map[string]string {
	resp, err := call(cmd.Context(), c, c.control.ListNetworks, &shoalpb.ListNetworksRequest{})
	out := map[string]string{}
	if err != nil {
		return out
	}
	for _, n := range resp.GetNetworks() {
		out[n.GetId()] = n.GetSpec().GetName()
	}
	return out
}

// writeEndpointPretty adds the networks, endpoint mode, ports and VIPs of
// a service to its --pretty output, as docker words them (a service with
// neither networks nor an endpoint spec shows none of it).
func writeEndpointPretty(b *strings.Builder, s serviceJSON, kv func(string, any), line func(string)) {
	name := func(id string) string {
		if n := s.networkNames[id]; n != "" {
			return n
		}
		return id
	}
	if nets := s.Spec.TaskTemplate.Networks; len(nets) > 0 {
		words := make([]string, 0, len(nets))
		for _, n := range nets {
			words = append(words, name(n.Target))
		}
		kv("Networks", strings.Join(words, " "))
	}
	if s.Spec.EndpointSpec == nil && len(s.Spec.TaskTemplate.Networks) == 0 {
		return
	}
	mode := "vip"
	if s.Spec.EndpointSpec != nil {
		mode = s.Spec.EndpointSpec.Mode
	}
	kv("Endpoint Mode", mode)
	ports := s.Spec.EndpointSpec.portsOrNil()
	if s.Endpoint != nil && len(s.Endpoint.Ports) > 0 {
		ports = s.Endpoint.Ports
	}
	if len(ports) > 0 {
		line("Ports:")
		for _, p := range ports {
			published := strconv.FormatUint(uint64(p.PublishedPort), 10)
			if p.PublishedPort == 0 {
				published = "(assigned when allocated)"
			}
			line(" PublishedPort = " + published)
			line("  Protocol = " + p.Protocol)
			line("  TargetPort = " + strconv.FormatUint(uint64(p.TargetPort), 10))
			line("  PublishMode = " + p.PublishMode)
		}
	}
	if s.Endpoint != nil && len(s.Endpoint.VirtualIPs) > 0 {
		line("Virtual IPs:")
		for _, v := range s.Endpoint.VirtualIPs {
			line(" " + name(v.NetworkID) + ": " + v.Addr)
		}
	}
}

func (e *endpointSpecJSON) portsOrNil() []portConfigJSON {
	if e == nil {
		return nil
	}
	return e.Ports
}

// addrPoolValue collects --default-addr-pool CIDRs.
type addrPoolValue struct{ pools []string }

func (a *addrPoolValue) String() string { return listString(a.pools) }
func (a *addrPoolValue) Type() string   { return "ipNetSlice" }

func (a *addrPoolValue) Set(s string) error {
	if err := checkCIDR("default address pool", s); err != nil {
		return err
	}
	a.pools = append(a.pools, strings.TrimSpace(s))
	return nil
}

// checkCIDR refuses what is not an IPv4 CIDR whose host bits are zero.
func checkCIDR(what, s string) error {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	switch {
	case err != nil:
		return fmt.Errorf("invalid %s %q: must be an IPv4 CIDR such as 10.0.1.0/24", what, s)
	case !p.Addr().Is4():
		return fmt.Errorf("invalid %s %q: only IPv4 is supported", what, s)
	case p.Masked() != p:
		return fmt.Errorf("invalid %s %q: host bits are set (did you mean %s?)", what, s, p.Masked())
	}
	return nil
}
