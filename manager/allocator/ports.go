package allocator

import (
	"fmt"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// The range published ports are assigned from when a service asks for
// none, as docker's.
const (
	FirstDynamicPort = 30000
	LastDynamicPort  = 32767
)

// PortKey is a published port of the routing mesh: ports are unique per
// protocol across the cluster.
type PortKey struct {
	Protocol shoalpb.PortConfig_Protocol
	Port     uint32
}

// String words the port as docker does: "8080/tcp".
func (k PortKey) String() string { return fmt.Sprintf("%d/%s", k.Port, ProtocolName(k.Protocol)) }

// ProtocolName is the lower-case protocol word: tcp or udp.
func ProtocolName(p shoalpb.PortConfig_Protocol) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PROTOCOL_"))
}

// PortInUseError is the failure to reserve a port another holder has.
type PortInUseError struct {
	Key   PortKey
	Owner string
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %s is already in use by %s", e.Key, e.Owner)
}

// Ports tracks the published ports of the routing mesh and who holds them
// (a service ID). Assignment goes round the dynamic range, so a freed
// port is reused as late as possible.
type Ports struct {
	owner  map[PortKey]string
	cursor map[shoalpb.PortConfig_Protocol]uint32
}

// NewPorts returns an empty port table.
func NewPorts() *Ports {
	return &Ports{owner: map[PortKey]string{}, cursor: map[shoalpb.PortConfig_Protocol]uint32{}}
}

// Owner returns who holds k.
func (p *Ports) Owner(k PortKey) (string, bool) {
	o, ok := p.owner[k]
	return o, ok
}

// Reserve gives k to owner. Holding it already is not an error; another
// holder is (*PortInUseError).
func (p *Ports) Reserve(k PortKey, owner string) error {
	if k.Port == 0 || k.Port > 65535 {
		return fmt.Errorf("invalid published port %s", k)
	}
	if o, ok := p.owner[k]; ok && o != owner {
		return &PortInUseError{Key: k, Owner: o}
	}
	p.owner[k] = owner
	return nil
}

// Allocate gives owner a free port of the dynamic range.
func (p *Ports) Allocate(proto shoalpb.PortConfig_Protocol, owner string) (uint32, error) {
	const n = LastDynamicPort - FirstDynamicPort + 1
	start := p.cursor[proto]
	if start < FirstDynamicPort || start > LastDynamicPort {
		start = FirstDynamicPort
	}
	for i := uint32(0); i < n; i++ {
		port := FirstDynamicPort + (start-FirstDynamicPort+i)%n
		k := PortKey{Protocol: proto, Port: port}
		if _, taken := p.owner[k]; taken {
			continue
		}
		p.owner[k] = owner
		p.cursor[proto] = port + 1
		return port, nil
	}
	return 0, exhaustedError(fmt.Sprintf("no published port left in %d-%d/%s", FirstDynamicPort, LastDynamicPort, ProtocolName(proto)))
}

// Release frees k if owner holds it; it reports whether it did.
func (p *Ports) Release(k PortKey, owner string) bool {
	if o, ok := p.owner[k]; ok && o == owner {
		delete(p.owner, k)
		return true
	}
	return false
}
