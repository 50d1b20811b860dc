package allocator

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Limits and defaults of the cluster's network configuration, as docker's.
const (
	// DefaultAddrPool is where network subnets come from when swarm init
	// names no pool.
	DefaultAddrPool = "10.0.0.0/8"
	// DefaultSubnetSize is the prefix length of the subnets carved from
	// the pools.
	DefaultSubnetSize = 24
	// MaxSubnetSize is the longest prefix length carved subnets may have.
	MaxSubnetSize = 29
	// MaxUserSubnetSize is the longest prefix length of a subnet given by
	// hand: the network address, the gateway, one task and the broadcast
	// address.
	MaxUserSubnetSize = 30
	// DefaultDataPathPort is the VXLAN UDP port.
	DefaultDataPathPort = 4789
	// MinDataPathPort and MaxDataPathPort bound the VXLAN port.
	MinDataPathPort = 1024
	MaxDataPathPort = 49151
)

// ErrExhausted is matched (errors.Is) by the errors of allocations that
// failed because nothing was left: subnets, addresses, VNIs or ports.
var ErrExhausted = errors.New("allocation space exhausted")

// exhaustedError is an allocation failure for lack of space; its text
// names the space.
type exhaustedError string

func (e exhaustedError) Error() string        { return string(e) }
func (e exhaustedError) Is(target error) bool { return target == ErrExhausted }

// NetworkConfig is the cluster's network configuration, parsed: fixed at
// swarm init.
type NetworkConfig struct {
	// Pools are the default address pools network subnets are carved from.
	Pools []netip.Prefix
	// SubnetSize is the prefix length of carved subnets.
	SubnetSize int
	// DataPathPort is the VXLAN UDP port of every node.
	DataPathPort uint32
}

// ParseNetworkConfig checks a network configuration and fills in the
// defaults (10.0.0.0/8, /24 subnets, port 4789) of what it leaves unset.
// Every error names the offending value.
func ParseNetworkConfig(c *shoalpb.NetworkConfig) (NetworkConfig, error) {
	out := NetworkConfig{SubnetSize: int(c.GetSubnetSize()), DataPathPort: c.GetDataPathPort()}
	raw := c.GetDefaultAddrPool()
	if len(raw) == 0 {
		raw = []string{DefaultAddrPool}
	}
	for _, s := range raw {
		p, err := parseIPv4Prefix(s)
		if err != nil {
			return NetworkConfig{}, fmt.Errorf("invalid default address pool %q: %v", s, err)
		}
		for _, q := range out.Pools {
			if q.Overlaps(p) {
				return NetworkConfig{}, fmt.Errorf("invalid default address pool %q: it overlaps pool %s", s, q)
			}
		}
		out.Pools = append(out.Pools, p)
	}
	if out.SubnetSize == 0 {
		out.SubnetSize = DefaultSubnetSize
	}
	longest := out.Pools[0]
	for _, p := range out.Pools {
		if p.Bits() > longest.Bits() {
			longest = p
		}
	}
	if out.SubnetSize < longest.Bits() || out.SubnetSize > MaxSubnetSize {
		return NetworkConfig{}, fmt.Errorf("invalid default address pool mask length %d: must be between %d (the prefix length of pool %s) and %d", out.SubnetSize, longest.Bits(), longest, MaxSubnetSize)
	}
	if out.DataPathPort == 0 {
		out.DataPathPort = DefaultDataPathPort
	}
	if out.DataPathPort < MinDataPathPort || out.DataPathPort > MaxDataPathPort {
		return NetworkConfig{}, fmt.Errorf("invalid data path port %d: must be between %d and %d", out.DataPathPort, MinDataPathPort, MaxDataPathPort)
	}
	return out, nil
}

// Proto returns the configuration as the cluster object stores it.
func (c NetworkConfig) Proto() *shoalpb.NetworkConfig {
	out := &shoalpb.NetworkConfig{SubnetSize: uint32(c.SubnetSize), DataPathPort: c.DataPathPort}
	for _, p := range c.Pools {
		out.DefaultAddrPool = append(out.DefaultAddrPool, p.String())
	}
	return out
}

// ClusterNetworkConfig returns the network configuration of a cluster
// object, with the defaults for what it leaves unset (a cluster made before
// networks existed has none).
func ClusterNetworkConfig(c *shoalpb.Cluster) (NetworkConfig, error) {
	return ParseNetworkConfig(c.GetNetworkConfig())
}

// DataPathPort returns the VXLAN UDP port of a cluster: its configured one,
// or 4789.
func DataPathPort(c *shoalpb.Cluster) uint32 {
	if p := c.GetNetworkConfig().GetDataPathPort(); p != 0 {
		return p
	}
	return DefaultDataPathPort
}

// parseIPv4Prefix reads an IPv4 CIDR whose host bits are zero.
func parseIPv4Prefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, errors.New("must be an IPv4 CIDR such as 10.0.1.0/24")
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errors.New("only IPv4 is supported")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits are set (did you mean %s?)", m)
	}
	return p, nil
}

func v4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrV4(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// prefixSize is the number of addresses in p.
func prefixSize(p netip.Prefix) uint64 { return 1 << (32 - p.Bits()) }

// lastV4 is the last address of p, as a number.
func lastV4(p netip.Prefix) uint64 { return uint64(v4(p.Addr())) + prefixSize(p) - 1 }

// NextSubnet returns the first subnet with prefix length size, taken from
// the pools in order, that overlaps none of taken.
func NextSubnet(pools []netip.Prefix, size int, taken []netip.Prefix) (netip.Prefix, error) {
	step := uint64(1) << (32 - size)
	for _, pool := range pools {
		if size < pool.Bits() || size > 32 {
			continue
		}
		end := lastV4(pool)
		for cand := uint64(v4(pool.Addr())); cand+step-1 <= end; {
			next := cand
			candLast := cand + step - 1
			for _, t := range taken {
				tFirst, tLast := uint64(v4(t.Addr())), lastV4(t)
				if tFirst <= candLast && tLast >= cand && tLast+1 > next {
					next = tLast + 1
				}
			}
			if next == cand {
				return netip.PrefixFrom(addrV4(uint32(cand)), size), nil
			}
			// Skip past what overlaps, to the next boundary of size.
			cand = (next + step - 1) / step * step
		}
	}
	words := make([]string, len(pools))
	for i, p := range pools {
		words[i] = p.String()
	}
	return netip.Prefix{}, exhaustedError(fmt.Sprintf("no /%d subnet left in the default address pools (%s)", size, strings.Join(words, ", ")))
}

// IPAM is a network's addressing: its subnet, its gateway and, when set,
// the range task addresses come from.
type IPAM struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
	// Range is the part of Subnet addresses are allocated from; the zero
	// Prefix means the whole subnet.
	Range netip.Prefix
}

// NewIPAM returns the addressing of a subnet carved from a pool: its
// gateway is the first address after the network address.
func NewIPAM(subnet netip.Prefix) IPAM {
	return IPAM{Subnet: subnet, Gateway: addrV4(v4(subnet.Addr()) + 1)}
}

// Proto returns the addressing as a network stores it.
func (i IPAM) Proto() *shoalpb.IPAMConfig {
	out := &shoalpb.IPAMConfig{Subnet: i.Subnet.String(), Gateway: i.Gateway.String()}
	if i.Range.IsValid() {
		out.IpRange = i.Range.String()
	}
	return out
}

// ParseIPAM checks the addressing a user asks for: a subnet (which may be
// empty: one from the pools), a gateway and an IP range, both inside the
// subnet. The gateway defaults to the subnet's first address. A config
// without a subnet returns the zero IPAM. Every error names the value.
func ParseIPAM(c *shoalpb.IPAMConfig) (IPAM, error) {
	subnet, gateway, ipRange := strings.TrimSpace(c.GetSubnet()), strings.TrimSpace(c.GetGateway()), strings.TrimSpace(c.GetIpRange())
	if subnet == "" {
		switch {
		case gateway != "":
			return IPAM{}, fmt.Errorf("invalid gateway %q: a gateway needs a subnet", gateway)
		case ipRange != "":
			return IPAM{}, fmt.Errorf("invalid IP range %q: an IP range needs a subnet", ipRange)
		}
		return IPAM{}, nil
	}
	p, err := parseIPv4Prefix(subnet)
	if err != nil {
		return IPAM{}, fmt.Errorf("invalid subnet %q: %v", subnet, err)
	}
	if p.Bits() > MaxUserSubnetSize {
		return IPAM{}, fmt.Errorf("invalid subnet %q: too small, the longest prefix is /%d", subnet, MaxUserSubnetSize)
	}
	out := NewIPAM(p)
	network, broadcast := p.Addr(), addrV4(uint32(lastV4(p)))
	if gateway != "" {
		g, err := netip.ParseAddr(gateway)
		if err != nil || !g.Is4() {
			return IPAM{}, fmt.Errorf("invalid gateway %q: must be an IPv4 address", gateway)
		}
		switch {
		case !p.Contains(g):
			return IPAM{}, fmt.Errorf("invalid gateway %q: it is not in subnet %s", gateway, p)
		case g == network:
			return IPAM{}, fmt.Errorf("invalid gateway %q: it is the network address of subnet %s", gateway, p)
		case g == broadcast:
			return IPAM{}, fmt.Errorf("invalid gateway %q: it is the broadcast address of subnet %s", gateway, p)
		}
		out.Gateway = g
	}
	if ipRange != "" {
		r, err := parseIPv4Prefix(ipRange)
		if err != nil {
			return IPAM{}, fmt.Errorf("invalid IP range %q: %v", ipRange, err)
		}
		if r.Bits() < p.Bits() || !p.Contains(r.Addr()) {
			return IPAM{}, fmt.Errorf("invalid IP range %q: it is not within subnet %s", ipRange, p)
		}
		out.Range = r
		if NewAddrPool(out).Available() == 0 {
			return IPAM{}, fmt.Errorf("invalid IP range %q: it leaves no address for tasks in subnet %s (gateway %s)", ipRange, p, out.Gateway)
		}
	}
	return out, nil
}

// ParseStoredIPAM reads the addressing stored with a network.
func ParseStoredIPAM(c *shoalpb.IPAMConfig) (IPAM, error) {
	if c.GetSubnet() == "" {
		return IPAM{}, errors.New("the network has no subnet")
	}
	return ParseIPAM(c)
}

// AddrPool hands out the addresses of one network: task addresses and
// service VIPs. The network address, the broadcast address and the
// gateway are never handed out. Allocation goes round the range, so a
// freed address is reused as late as possible.
type AddrPool struct {
	ipam      IPAM
	base      uint32
	size      uint64
	lo, hi    uint64 // allocatable offsets, inclusive
	used      []uint64
	reserved  map[uint64]string // offsets never handed out, with why
	inUse     int
	available int
	cursor    uint64
}

// NewAddrPool returns an empty pool for ipam.
func NewAddrPool(ipam IPAM) *AddrPool {
	p := &AddrPool{ipam: ipam, base: v4(ipam.Subnet.Addr()), size: prefixSize(ipam.Subnet)}
	p.used = make([]uint64, (p.size+63)/64)
	p.reserved = map[uint64]string{0: "the network address", p.size - 1: "the broadcast address"}
	if ipam.Gateway.IsValid() && ipam.Subnet.Contains(ipam.Gateway) {
		p.reserved[uint64(v4(ipam.Gateway)-p.base)] = "the gateway"
	}
	p.lo, p.hi = 0, p.size-1
	if ipam.Range.IsValid() {
		p.lo = uint64(v4(ipam.Range.Addr()) - p.base)
		p.hi = p.lo + prefixSize(ipam.Range) - 1
	}
	for off := range p.reserved {
		p.set(off)
	}
	p.available = int(p.hi - p.lo + 1)
	for off := range p.reserved {
		if off >= p.lo && off <= p.hi {
			p.available--
		}
	}
	p.cursor = p.lo
	return p
}

// IPAM returns the pool's addressing.
func (p *AddrPool) IPAM() IPAM { return p.ipam }

// Available returns how many addresses are left.
func (p *AddrPool) Available() int { return p.available }

// InUse returns how many addresses are handed out or reserved by holders.
func (p *AddrPool) InUse() int { return p.inUse }

func (p *AddrPool) isSet(off uint64) bool { return p.used[off/64]&(1<<(off%64)) != 0 }
func (p *AddrPool) set(off uint64)        { p.used[off/64] |= 1 << (off % 64) }
func (p *AddrPool) clear(off uint64)      { p.used[off/64] &^= 1 << (off % 64) }

// Allocate hands out a free address.
func (p *AddrPool) Allocate() (netip.Addr, error) {
	off, ok := p.findFree(p.cursor, p.hi)
	if !ok {
		off, ok = p.findFree(p.lo, p.hi)
	}
	if !ok {
		msg := "no IPv4 address left in " + p.ipam.Subnet.String()
		if p.ipam.Range.IsValid() {
			msg += " (IP range " + p.ipam.Range.String() + ")"
		}
		return netip.Addr{}, exhaustedError(msg)
	}
	p.take(off)
	p.cursor = off + 1
	if p.cursor > p.hi {
		p.cursor = p.lo
	}
	return addrV4(p.base + uint32(off)), nil
}

// findFree returns the first free offset in [from, to].
func (p *AddrPool) findFree(from, to uint64) (uint64, bool) {
	for off := from; off <= to; {
		w := p.used[off/64] | (1<<(off%64) - 1) // ignore bits below off
		if w == ^uint64(0) {
			off = (off/64 + 1) * 64
			continue
		}
		free := off/64*64 + uint64(bits.TrailingZeros64(^w))
		if free > to {
			return 0, false
		}
		return free, true
	}
	return 0, false
}

func (p *AddrPool) take(off uint64) {
	p.set(off)
	p.inUse++
	if off >= p.lo && off <= p.hi {
		p.available--
	}
}

func (p *AddrPool) offset(a netip.Addr) (uint64, error) {
	if !a.Is4() || !p.ipam.Subnet.Contains(a) {
		return 0, fmt.Errorf("address %s is not in subnet %s", a, p.ipam.Subnet)
	}
	return uint64(v4(a) - p.base), nil
}

// Reserve marks a known address as handed out (rebuilding the pool from
// what holders hold). It fails for an address outside the subnet, one
// never handed out (network, broadcast, gateway) and one already in use.
func (p *AddrPool) Reserve(a netip.Addr) error {
	off, err := p.offset(a)
	if err != nil {
		return err
	}
	if why, ok := p.reserved[off]; ok {
		return fmt.Errorf("address %s is %s of subnet %s", a, why, p.ipam.Subnet)
	}
	if p.isSet(off) {
		return fmt.Errorf("address %s is already in use", a)
	}
	p.take(off)
	return nil
}

// Release frees an address handed out; it reports whether it was.
func (p *AddrPool) Release(a netip.Addr) bool {
	off, err := p.offset(a)
	if err != nil || !p.isSet(off) {
		return false
	}
	if _, ok := p.reserved[off]; ok {
		return false
	}
	p.clear(off)
	p.inUse--
	if off >= p.lo && off <= p.hi {
		p.available++
	}
	return true
}

// MACFromIP derives a task's MAC address from its IPv4 address as docker
// does: 02:42 followed by the four address bytes.
func MACFromIP(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// VNI bounds: as docker's overlay driver, VNIs below 4096 are skipped
// (they would overlap 802.1Q VLAN IDs on some platforms).
const (
	FirstVNI = 4096
	MaxVNI   = 1<<24 - 1
)

// NextVNI returns the lowest VNI from FirstVNI that used does not hold.
func NextVNI(used map[uint32]bool) (uint32, error) {
	for v := uint32(FirstVNI); v <= MaxVNI; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, exhaustedError(fmt.Sprintf("no VXLAN network identifier left in %d-%d", FirstVNI, MaxVNI))
}

// IngressNetworkName is the name of the routing mesh's network made at
// swarm init.
const IngressNetworkName = "ingress"

// NewIngressNetwork returns the ingress network of a new cluster: the
// first subnet of its pools and the first VNI.
func NewIngressNetwork(id string, cfg NetworkConfig, createdAt int64) (*shoalpb.Network, error) {
	subnet, err := NextSubnet(cfg.Pools, cfg.SubnetSize, nil)
	if err != nil {
		return nil, err
	}
	return &shoalpb.Network{
		Id:   id,
		Meta: &shoalpb.Meta{CreatedAt: createdAt, UpdatedAt: createdAt},
		Spec: &shoalpb.NetworkSpec{Name: IngressNetworkName, Driver: "overlay", Ingress: true},
		Vni:  FirstVNI,
		Ipam: NewIPAM(subnet).Proto(),
	}, nil
}
