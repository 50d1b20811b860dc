package allocator

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, mustPrefix(t, s))
	}
	return out
}

func TestParseNetworkConfigDefaultsAndErrors(t *testing.T) {
	c, err := ParseNetworkConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pools) != 1 || c.Pools[0].String() != "10.0.0.0/8" || c.SubnetSize != 24 || c.DataPathPort != 4789 {
		t.Fatalf("defaults = %+v", c)
	}
	c, err = ParseNetworkConfig(&shoalpb.NetworkConfig{DefaultAddrPool: []string{"198.19.0.0/16", "192.168.0.0/24"}, SubnetSize: 26, DataPathPort: 7789})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Proto(); got.DefaultAddrPool[1] != "192.168.0.0/24" || got.SubnetSize != 26 || got.DataPathPort != 7789 {
		t.Fatalf("round trip = %v", got)
	}
	for _, tc := range []struct {
		cfg  *shoalpb.NetworkConfig
		want string
	}{
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"10.0.0.0/33"}}, `invalid default address pool "10.0.0.0/33": must be an IPv4 CIDR`},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"nope"}}, `invalid default address pool "nope"`},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"10.0.0.1/8"}}, `host bits are set (did you mean 10.0.0.0/8?)`},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"fd00::/48"}}, `invalid default address pool "fd00::/48": only IPv4`},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"10.0.0.0/8", "10.1.0.0/16"}}, `invalid default address pool "10.1.0.0/16": it overlaps pool 10.0.0.0/8`},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"198.19.0.0/16"}, SubnetSize: 30}, "invalid default address pool mask length 30: must be between 16 (the prefix length of pool 198.19.0.0/16) and 29"},
		{&shoalpb.NetworkConfig{DefaultAddrPool: []string{"198.19.0.0/16"}, SubnetSize: 8}, "invalid default address pool mask length 8"},
		{&shoalpb.NetworkConfig{DataPathPort: 80}, "invalid data path port 80: must be between 1024 and 49151"},
		{&shoalpb.NetworkConfig{DataPathPort: 49152}, "invalid data path port 49152"},
	} {
		if _, err := ParseNetworkConfig(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseNetworkConfig(%v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if p := DataPathPort(&shoalpb.Cluster{}); p != 4789 {
		t.Errorf("DataPathPort of a cluster without config = %d", p)
	}
	if p := DataPathPort(&shoalpb.Cluster{NetworkConfig: &shoalpb.NetworkConfig{DataPathPort: 7000}}); p != 7000 {
		t.Errorf("DataPathPort = %d", p)
	}
}

func TestNextSubnet(t *testing.T) {
	pools := prefixes(t, "10.0.0.0/16", "198.19.0.0/23")
	for _, tc := range []struct {
		taken []string
		size  int
		want  string
	}{
		{nil, 24, "10.0.0.0/24"},
		{[]string{"10.0.0.0/24", "10.0.1.0/24"}, 24, "10.0.2.0/24"},
		// A user subnet bigger than the carved size is jumped over whole.
		{[]string{"10.0.0.0/24", "10.0.4.0/22", "10.0.1.0/24", "10.0.2.0/23"}, 24, "10.0.8.0/24"},
		// A smaller one inside a candidate makes the whole candidate taken.
		{[]string{"10.0.0.128/25"}, 24, "10.0.1.0/24"},
		// Subnets outside the pools do not matter.
		{[]string{"192.168.0.0/16"}, 24, "10.0.0.0/24"},
		// The first pool full: the next one.
		{[]string{"10.0.0.0/16"}, 24, "198.19.0.0/24"},
		{[]string{"10.0.0.0/16", "198.19.0.0/24"}, 24, "198.19.1.0/24"},
		{[]string{"10.0.0.0/16", "198.19.0.0/24"}, 26, "198.19.1.0/26"},
	} {
		got, err := NextSubnet(pools, tc.size, prefixes(t, tc.taken...))
		if err != nil || got.String() != tc.want {
			t.Errorf("NextSubnet(taken %v, /%d) = %v, %v; want %s", tc.taken, tc.size, got, err, tc.want)
		}
	}
	_, err := NextSubnet(pools, 24, prefixes(t, "10.0.0.0/16", "198.19.0.0/23"))
	if !errors.Is(err, ErrExhausted) || err.Error() != "no /24 subnet left in the default address pools (10.0.0.0/16, 198.19.0.0/23)" {
		t.Errorf("exhausted pools: %v", err)
	}
	// The last subnet of the address space is reachable without overflow.
	got, err := NextSubnet(prefixes(t, "255.255.255.0/24"), 25, prefixes(t, "255.255.255.0/25"))
	if err != nil || got.String() != "255.255.255.128/25" {
		t.Errorf("top of the address space: %v, %v", got, err)
	}
}

func TestParseIPAM(t *testing.T) {
	got, err := ParseIPAM(&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24"})
	if err != nil || got.Gateway.String() != "10.0.1.1" || got.Range.IsValid() {
		t.Fatalf("subnet only = %+v, %v", got, err)
	}
	got, err = ParseIPAM(&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.254", IpRange: "10.0.1.128/25"})
	if err != nil || got.Gateway.String() != "10.0.1.254" || got.Range.String() != "10.0.1.128/25" {
		t.Fatalf("full = %+v, %v", got, err)
	}
	if p := got.Proto(); p.Subnet != "10.0.1.0/24" || p.Gateway != "10.0.1.254" || p.IpRange != "10.0.1.128/25" {
		t.Errorf("Proto = %v", p)
	}
	if got, err := ParseIPAM(nil); err != nil || got.Subnet.IsValid() {
		t.Errorf("empty = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		c    *shoalpb.IPAMConfig
		want string
	}{
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0"}, `invalid subnet "10.0.1.0": must be an IPv4 CIDR`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.5/24"}, `invalid subnet "10.0.1.5/24": host bits are set (did you mean 10.0.1.0/24?)`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/31"}, `invalid subnet "10.0.1.0/31": too small`},
		{&shoalpb.IPAMConfig{Gateway: "10.0.1.1"}, `invalid gateway "10.0.1.1": a gateway needs a subnet`},
		{&shoalpb.IPAMConfig{IpRange: "10.0.1.0/25"}, `invalid IP range "10.0.1.0/25": an IP range needs a subnet`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1"}, `invalid gateway "10.0.1": must be an IPv4 address`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.2.1"}, `invalid gateway "10.0.2.1": it is not in subnet 10.0.1.0/24`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.0"}, `it is the network address of subnet 10.0.1.0/24`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.255"}, `it is the broadcast address of subnet 10.0.1.0/24`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", IpRange: "10.0.2.0/25"}, `invalid IP range "10.0.2.0/25": it is not within subnet 10.0.1.0/24`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", IpRange: "10.0.0.0/16"}, `invalid IP range "10.0.0.0/16": it is not within subnet 10.0.1.0/24`},
		{&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", IpRange: "10.0.1.1/32"}, `invalid IP range "10.0.1.1/32": it leaves no address for tasks`},
	} {
		if _, err := ParseIPAM(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseIPAM(%v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestAddrPoolHandsOutEveryAddressOnce(t *testing.T) {
	p := NewAddrPool(NewIPAM(mustPrefix(t, "10.0.1.0/29")))
	if p.Available() != 5 {
		t.Fatalf("a /29 has %d addresses for tasks, want 5", p.Available())
	}
	var got []string
	for range 5 {
		a, err := p.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.0.1.2 10.0.1.3 10.0.1.4 10.0.1.5 10.0.1.6" {
		t.Fatalf("allocated %v", got)
	}
	_, err := p.Allocate()
	if !errors.Is(err, ErrExhausted) || err.Error() != "no IPv4 address left in 10.0.1.0/29" {
		t.Fatalf("full pool: %v", err)
	}
	// A freed address is handed out again, but only once the cursor came
	// round: the next free one after the last handed out.
	if !p.Release(netip.MustParseAddr("10.0.1.3")) || !p.Release(netip.MustParseAddr("10.0.1.5")) {
		t.Fatal("release failed")
	}
	if p.Release(netip.MustParseAddr("10.0.1.5")) {
		t.Error("double release succeeded")
	}
	if p.Release(netip.MustParseAddr("10.0.1.1")) {
		t.Error("the gateway was released")
	}
	for _, want := range []string{"10.0.1.3", "10.0.1.5"} {
		if a, err := p.Allocate(); err != nil || a.String() != want {
			t.Errorf("Allocate = %v, %v; want %s", a, err, want)
		}
	}
	if p.Available() != 0 || p.InUse() != 5 {
		t.Errorf("available %d, in use %d", p.Available(), p.InUse())
	}
}

func TestAddrPoolRoundRobinAndRange(t *testing.T) {
	p := NewAddrPool(NewIPAM(mustPrefix(t, "10.0.1.0/24")))
	a, _ := p.Allocate()
	p.Release(a)
	if b, _ := p.Allocate(); b == a {
		t.Errorf("freed address %s handed out again at once", a)
	}

	ipam, err := ParseIPAM(&shoalpb.IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.129", IpRange: "10.0.1.128/30"})
	if err != nil {
		t.Fatal(err)
	}
	p = NewAddrPool(ipam)
	// .128 is in the range but is an ordinary address there; .129 is the gateway.
	var got []string
	for {
		a, err := p.Allocate()
		if err != nil {
			if !strings.Contains(err.Error(), "no IPv4 address left in 10.0.1.0/24 (IP range 10.0.1.128/30)") {
				t.Fatalf("exhausted range: %v", err)
			}
			break
		}
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.0.1.128 10.0.1.130 10.0.1.131" {
		t.Errorf("range allocations %v", got)
	}
	// Reserve accepts any host address of the subnet (one allocated
	// before), refuses the special ones and duplicates.
	if err := p.Reserve(netip.MustParseAddr("10.0.1.7")); err != nil {
		t.Errorf("Reserve outside the range: %v", err)
	}
	for addr, want := range map[string]string{
		"10.0.1.7":   "already in use",
		"10.0.1.129": "the gateway",
		"10.0.1.0":   "the network address",
		"10.0.1.255": "the broadcast address",
		"10.0.2.1":   "not in subnet",
	} {
		if err := p.Reserve(netip.MustParseAddr(addr)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Reserve(%s) = %v, want %q", addr, err, want)
		}
	}
}

func TestAddrPoolLargeSubnetSkipsFullWords(t *testing.T) {
	p := NewAddrPool(NewIPAM(mustPrefix(t, "10.0.0.0/16")))
	for i := 2; i < 1000; i++ {
		if err := p.Reserve(addrV4(v4(netip.MustParseAddr("10.0.0.0")) + uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := p.Allocate(); err != nil || a.String() != "10.0.3.232" {
		t.Errorf("Allocate after 998 reserved = %v, %v; want 10.0.3.232", a, err)
	}
}

func TestMACAndVNI(t *testing.T) {
	if m := MACFromIP(netip.MustParseAddr("10.0.1.5")); m != "02:42:0a:00:01:05" {
		t.Errorf("MACFromIP = %s", m)
	}
	if v, err := NextVNI(nil); err != nil || v != 4096 {
		t.Errorf("first VNI = %d, %v", v, err)
	}
	if v, err := NextVNI(map[uint32]bool{4096: true, 4097: true, 4099: true}); err != nil || v != 4098 {
		t.Errorf("NextVNI = %d, %v; want the lowest free 4098", v, err)
	}
}

func TestPorts(t *testing.T) {
	p := NewPorts()
	tcp8080 := PortKey{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, Port: 8080}
	if err := p.Reserve(tcp8080, "a"); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(tcp8080, "a"); err != nil {
		t.Errorf("reserving a held port again: %v", err)
	}
	var inUse *PortInUseError
	if err := p.Reserve(tcp8080, "b"); !errors.As(err, &inUse) || inUse.Owner != "a" || err.Error() != "port 8080/tcp is already in use by a" {
		t.Errorf("conflict = %v", err)
	}
	// Protocols are separate spaces.
	if err := p.Reserve(PortKey{Protocol: shoalpb.PortConfig_PROTOCOL_UDP, Port: 8080}, "b"); err != nil {
		t.Errorf("8080/udp: %v", err)
	}
	if p.Release(tcp8080, "b") {
		t.Error("b released a's port")
	}
	if !p.Release(tcp8080, "a") {
		t.Error("a could not release its port")
	}

	if err := p.Reserve(PortKey{Protocol: shoalpb.PortConfig_PROTOCOL_TCP, Port: FirstDynamicPort}, "x"); err != nil {
		t.Fatal(err)
	}
	if port, err := p.Allocate(shoalpb.PortConfig_PROTOCOL_TCP, "c"); err != nil || port != FirstDynamicPort+1 {
		t.Errorf("dynamic port = %d, %v; want %d", port, err, FirstDynamicPort+1)
	}
	for {
		if _, err := p.Allocate(shoalpb.PortConfig_PROTOCOL_TCP, "c"); err != nil {
			if !errors.Is(err, ErrExhausted) || err.Error() != "no published port left in 30000-32767/tcp" {
				t.Errorf("exhausted: %v", err)
			}
			break
		}
	}
	if port, err := p.Allocate(shoalpb.PortConfig_PROTOCOL_UDP, "c"); err != nil || port != FirstDynamicPort {
		t.Errorf("first dynamic udp port = %d, %v", port, err)
	}
}
