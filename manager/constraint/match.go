package constraint

import (
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Match reports whether node n satisfies the constraint. When n lacks the
// attribute the constraint reads, == fails and != holds.
func (c Constraint) Match(n *shoalpb.Node) bool {
	if c.kind == kindNone {
		return false
	}
	equal, present := c.compare(n)
	if !present {
		return c.op == NotEqual
	}
	return equal == (c.op == Equal)
}

// MatchAll reports whether n satisfies every constraint in cs; an empty
// list is satisfied by every node.
func MatchAll(cs []Constraint, n *shoalpb.Node) bool {
	for _, c := range cs {
		if !c.Match(n) {
			return false
		}
	}
	return true
}

// compare reports whether the node's value equals the constraint's, and
// whether the node has a value at all.
func (c Constraint) compare(n *shoalpb.Node) (equal, present bool) {
	if n == nil {
		return false, false
	}
	switch c.kind {
	case kindID:
		v := n.GetId()
		return v == c.value, v != ""
	case kindHostname:
		v := n.GetDescription().GetHostname()
		return strings.EqualFold(v, c.value), v != ""
	case kindRole:
		return n.GetRole() == c.role, true
	case kindOS:
		v := n.GetDescription().GetPlatform().GetOs()
		return strings.EqualFold(v, c.value), v != ""
	case kindArch:
		v := n.GetDescription().GetPlatform().GetArchitecture()
		return v != "" && NormalizeArch(v) == c.arch, v != ""
	case kindNodeLabel:
		v, ok := n.GetSpec().GetLabels()[c.label]
		return ok && v == c.value, ok
	case kindEngineLabel:
		v, ok := n.GetDescription().GetEngineLabels()[c.label]
		return ok && v == c.value, ok
	case kindIP:
		a, ok := nodeAddr(n)
		return ok && c.prefix.Contains(a), ok
	}
	return false, false
}

// nodeAddr returns the IP in the node's status address, which is a bare
// host but is accepted as host:port too.
func nodeAddr(n *shoalpb.Node) (netip.Addr, bool) {
	s := strings.TrimSpace(n.GetStatus().GetAddr())
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}
