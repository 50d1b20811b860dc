package netdb

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Endpoint is one task's attachment to one overlay network.
type Endpoint struct {
	NetworkID  string
	EndpointID string
	// NodeID is the node that published the endpoint (its owner).
	NodeID string
	// IP and MAC are the task's addresses on the network.
	IP  netip.Addr
	MAC net.HardwareAddr
	// VTEP is the data-path address of the owner node: where VXLAN frames
	// for MAC are sent.
	VTEP        netip.Addr
	ServiceID   string
	ServiceName string
	TaskName    string
	// Aliases are the service's extra DNS names on this network.
	Aliases []string
	// VIP is the service's virtual IP on this network; the zero Addr when
	// the service resolves to its tasks (DNS round robin).
	VIP netip.Addr
	// Ports are the ports the service publishes through this endpoint:
	// set on endpoints of the ingress network, whose addresses are the
	// routing mesh's backends on every node.
	Ports []Port
}

// Port is a port a service publishes on the routing mesh: connections to
// Published (Protocol 6 = TCP, 17 = UDP) on any node are forwarded to
// Target on the endpoint's IP.
type Port struct {
	Protocol  uint8
	Published uint16
	Target    uint16
}

func (p Port) String() string { return fmt.Sprintf("%d->%d/%d", p.Published, p.Target, p.Protocol) }

// Clone returns a deep copy of e.
func (e Endpoint) Clone() Endpoint {
	e.MAC = bytes.Clone(e.MAC)
	e.Aliases = slices.Clone(e.Aliases)
	e.Ports = slices.Clone(e.Ports)
	return e
}

// Equal reports whether e and o carry the same values.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.NetworkID == o.NetworkID && e.EndpointID == o.EndpointID &&
		e.NodeID == o.NodeID && e.IP == o.IP && bytes.Equal(e.MAC, o.MAC) &&
		e.VTEP == o.VTEP && e.ServiceID == o.ServiceID &&
		e.ServiceName == o.ServiceName && e.TaskName == o.TaskName &&
		slices.Equal(e.Aliases, o.Aliases) && e.VIP == o.VIP &&
		slices.Equal(e.Ports, o.Ports)
}

// validate checks what every replica relies on: a key, an owner and the
// addresses the data plane programs.
func (e *Endpoint) validate() error {
	var errs []error
	if e.NetworkID == "" {
		errs = append(errs, errors.New("no network ID"))
	}
	if e.EndpointID == "" {
		errs = append(errs, errors.New("no endpoint ID"))
	}
	if e.NodeID == "" {
		errs = append(errs, errors.New("no node ID"))
	}
	if !e.IP.IsValid() {
		errs = append(errs, errors.New("no IP"))
	}
	if len(e.MAC) != 6 {
		errs = append(errs, fmt.Errorf("MAC %q is not 6 bytes", e.MAC))
	}
	if !e.VTEP.IsValid() {
		errs = append(errs, errors.New("no VTEP"))
	}
	if slices.Contains(e.Aliases, "") {
		errs = append(errs, errors.New("empty alias"))
	}
	for _, p := range e.Ports {
		if p.Protocol == 0 || p.Published == 0 || p.Target == 0 {
			errs = append(errs, fmt.Errorf("port %s: zero protocol or port", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("endpoint %q on network %q: %w", e.EndpointID, e.NetworkID, err)
	}
	return nil
}
