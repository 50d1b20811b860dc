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
}

// Clone returns a deep copy of e.
func (e Endpoint) Clone() Endpoint {
	e.MAC = bytes.Clone(e.MAC)
	e.Aliases = slices.Clone(e.Aliases)
	return e
}

// Equal reports whether e and o carry the same values.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.NetworkID == o.NetworkID && e.EndpointID == o.EndpointID &&
		e.NodeID == o.NodeID && e.IP == o.IP && bytes.Equal(e.MAC, o.MAC) &&
		e.VTEP == o.VTEP && e.ServiceID == o.ServiceID &&
		e.ServiceName == o.ServiceName && e.TaskName == o.TaskName &&
		slices.Equal(e.Aliases, o.Aliases) && e.VIP == o.VIP
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("endpoint %q on network %q: %w", e.EndpointID, e.NetworkID, err)
	}
	return nil
}
