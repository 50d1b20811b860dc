package constraint

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Operator is the comparison a constraint makes.
type Operator uint8

const (
	// Equal is the == operator: the node's value must equal the constraint's.
	Equal Operator = iota + 1
	// NotEqual is the != operator: the node's value must differ, or be absent.
	NotEqual
)

// String returns the operator as written in an expression.
func (o Operator) String() string {
	switch o {
	case Equal:
		return "=="
	case NotEqual:
		return "!="
	default:
		return fmt.Sprintf("Operator(%d)", uint8(o))
	}
}

// Canonical key names and prefixes.
const (
	KeyNodeID       = "node.id"
	KeyNodeHostname = "node.hostname"
	KeyNodeRole     = "node.role"
	KeyPlatformOS   = "node.platform.os"
	KeyPlatformArch = "node.platform.arch"
	KeyNodeIP       = "node.ip"
	// NodeLabelPrefix and EngineLabelPrefix are followed by a label name.
	NodeLabelPrefix   = "node.labels."
	EngineLabelPrefix = "engine.labels."
)

// kind says which node attribute a constraint reads.
type kind uint8

const (
	kindNone kind = iota
	kindID
	kindHostname
	kindRole
	kindOS
	kindArch
	kindNodeLabel
	kindEngineLabel
	kindIP
)

// fixedKeys maps the keys without a free-form part to their kind.
var fixedKeys = map[string]kind{
	KeyNodeID:       kindID,
	KeyNodeHostname: kindHostname,
	KeyNodeRole:     kindRole,
	KeyPlatformOS:   kindOS,
	KeyPlatformArch: kindArch,
	KeyNodeIP:       kindIP,
}

// Constraint is one parsed placement expression. Build it with Parse; the
// zero Constraint matches no node.
type Constraint struct {
	kind  kind
	op    Operator
	label string // label name, for the two label kinds
	value string // the value as written, surrounding spaces removed

	role   shoalpb.NodeRole // kindRole
	arch   string           // kindArch: normalised value
	prefix netip.Prefix     // kindIP: a single address is a full-length prefix
}

// ParseError reports an expression that is not a valid constraint.
type ParseError struct {
	// Expr is the expression exactly as given.
	Expr string
	// Msg says what is wrong with it.
	Msg string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid constraint %q: %s", e.Expr, e.Msg)
}

// Parse parses placement expressions of the form <key>==<value> or
// <key>!=<value>, with optional spaces around the operator. It returns the
// constraints in the order given, or a *ParseError naming the first bad
// expression.
func Parse(exprs []string) ([]Constraint, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := parseOne(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseOne(expr string) (Constraint, error) {
	fail := func(format string, args ...any) (Constraint, error) {
		return Constraint{}, &ParseError{Expr: expr, Msg: fmt.Sprintf(format, args...)}
	}

	i, op := findOperator(expr)
	if op == 0 {
		return fail("expected == or !=")
	}
	key := strings.TrimSpace(expr[:i])
	value := strings.TrimSpace(expr[i+2:])
	if key == "" {
		return fail("empty key")
	}
	if strings.ContainsAny(key, " \t\r\n=!") {
		return fail("malformed key %q", key)
	}
	if value == "" {
		return fail("empty value")
	}
	if strings.HasPrefix(value, "=") || strings.Contains(value, "==") || strings.Contains(value, "!=") {
		return fail("more than one operator")
	}

	c := Constraint{op: op, value: value}
	if k, ok := fixedKeys[strings.ToLower(key)]; ok {
		c.kind = k
	} else if label, ok := cutPrefixFold(key, NodeLabelPrefix); ok {
		c.kind, c.label = kindNodeLabel, label
	} else if label, ok := cutPrefixFold(key, EngineLabelPrefix); ok {
		c.kind, c.label = kindEngineLabel, label
	} else {
		return fail("unknown key %s", key)
	}
	if (c.kind == kindNodeLabel || c.kind == kindEngineLabel) && c.label == "" {
		return fail("empty label name in key %s", key)
	}

	switch c.kind {
	case kindRole:
		switch strings.ToLower(value) {
		case "manager":
			c.role = shoalpb.NodeRole_NODE_ROLE_MANAGER
		case "worker":
			c.role = shoalpb.NodeRole_NODE_ROLE_WORKER
		default:
			return fail("node.role must be manager or worker, not %q", value)
		}
		c.value = strings.ToLower(value)
	case kindArch:
		c.arch = NormalizeArch(value)
	case kindIP:
		p, ok := parseIPOrCIDR(value)
		if !ok {
			return fail("node.ip must be an IP address or CIDR, not %q", value)
		}
		c.prefix = p
	}
	return c, nil
}

// findOperator returns the position and kind of the first == or != in s,
// or op 0 when there is neither.
func findOperator(s string) (int, Operator) {
	for i := 0; i+1 < len(s); i++ {
		if s[i+1] != '=' {
			continue
		}
		switch s[i] {
		case '=':
			return i, Equal
		case '!':
			return i, NotEqual
		}
	}
	return -1, 0
}

// cutPrefixFold is strings.CutPrefix with an ASCII case-insensitive prefix.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func parseIPOrCIDR(v string) (netip.Prefix, bool) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// NormalizeArch maps an architecture name to the Go/OCI spelling docker
// uses, so that x86_64 and amd64 (or aarch64 and arm64) compare equal. The
// result is lower-case.
func NormalizeArch(arch string) string {
	a := strings.ToLower(strings.TrimSpace(arch))
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// Key returns the constraint's key in canonical form: the fixed part in
// lower case, a label name as written.
func (c Constraint) Key() string {
	switch c.kind {
	case kindNodeLabel:
		return NodeLabelPrefix + c.label
	case kindEngineLabel:
		return EngineLabelPrefix + c.label
	case kindID:
		return KeyNodeID
	case kindHostname:
		return KeyNodeHostname
	case kindRole:
		return KeyNodeRole
	case kindOS:
		return KeyPlatformOS
	case kindArch:
		return KeyPlatformArch
	case kindIP:
		return KeyNodeIP
	}
	return ""
}

// Operator returns the constraint's operator.
func (c Constraint) Operator() Operator { return c.op }

// Value returns the value the constraint compares with (node.role values
// in lower case, any other as written).
func (c Constraint) Value() string { return c.value }

// String returns the canonical expression, e.g. node.labels.zone==a. It
// parses back to an equivalent constraint.
func (c Constraint) String() string {
	if c.kind == kindNone {
		return ""
	}
	return c.Key() + c.op.String() + c.value
}
