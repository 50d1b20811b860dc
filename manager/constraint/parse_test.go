package constraint

import (
	"errors"
	"testing"
)

func TestParseCanonicalForm(t *testing.T) {
	tests := []struct {
		expr  string
		key   string
		op    Operator
		value string
		str   string
	}{
		{"node.id==abc123", "node.id", Equal, "abc123", "node.id==abc123"},
		{"node.id != abc123", "node.id", NotEqual, "abc123", "node.id!=abc123"},
		{"  node.hostname ==  host-1  ", "node.hostname", Equal, "host-1", "node.hostname==host-1"},
		{"NODE.ROLE==Manager", "node.role", Equal, "manager", "node.role==manager"},
		{"node.role!=WORKER", "node.role", NotEqual, "worker", "node.role!=worker"},
		{"node.platform.os==Linux", "node.platform.os", Equal, "Linux", "node.platform.os==Linux"},
		{"Node.Platform.Arch==x86_64", "node.platform.arch", Equal, "x86_64", "node.platform.arch==x86_64"},
		{"node.labels.zone==eu-1", "node.labels.zone", Equal, "eu-1", "node.labels.zone==eu-1"},
		{"NODE.LABELS.Zone==a", "node.labels.Zone", Equal, "a", "node.labels.Zone==a"},
		{"node.labels.com.example.tier!=db", "node.labels.com.example.tier", NotEqual, "db", "node.labels.com.example.tier!=db"},
		{"engine.labels.storage==ssd", "engine.labels.storage", Equal, "ssd", "engine.labels.storage==ssd"},
		{"node.ip==10.0.0.7", "node.ip", Equal, "10.0.0.7", "node.ip==10.0.0.7"},
		{"node.ip != 10.1.0.0/16", "node.ip", NotEqual, "10.1.0.0/16", "node.ip!=10.1.0.0/16"},
		{"node.ip==fd00::/8", "node.ip", Equal, "fd00::/8", "node.ip==fd00::/8"},
		{"node.labels.note==a=b", "node.labels.note", Equal, "a=b", "node.labels.note==a=b"},
		{"node.labels.name==two words", "node.labels.name", Equal, "two words", "node.labels.name==two words"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cs, err := Parse([]string{tt.expr})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(cs) != 1 {
				t.Fatalf("got %d constraints, want 1", len(cs))
			}
			c := cs[0]
			if c.Key() != tt.key || c.Operator() != tt.op || c.Value() != tt.value {
				t.Errorf("got key %q op %v value %q, want %q %v %q", c.Key(), c.Operator(), c.Value(), tt.key, tt.op, tt.value)
			}
			if c.String() != tt.str {
				t.Errorf("String() = %q, want %q", c.String(), tt.str)
			}
			// The canonical form parses back to the same constraint.
			again, err := Parse([]string{c.String()})
			if err != nil {
				t.Fatalf("reparse %q: %v", c.String(), err)
			}
			if again[0] != c {
				t.Errorf("reparse of %q gave %+v, want %+v", c.String(), again[0], c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{"node.labels.zone=a", `invalid constraint "node.labels.zone=a": expected == or !=`},
		{"", `invalid constraint "": expected == or !=`},
		{"node.role", `invalid constraint "node.role": expected == or !=`},
		{"node.role=!manager", `invalid constraint "node.role=!manager": expected == or !=`},
		{"node.rol==manager", `invalid constraint "node.rol==manager": unknown key node.rol`},
		{"labels.zone==a", `invalid constraint "labels.zone==a": unknown key labels.zone`},
		{"node.labels==a", `invalid constraint "node.labels==a": unknown key node.labels`},
		{"==a", `invalid constraint "==a": empty key`},
		{" != a", `invalid constraint " != a": empty key`},
		{"node.labels.zone==", `invalid constraint "node.labels.zone==": empty value`},
		{"node.labels.zone !=   ", `invalid constraint "node.labels.zone !=   ": empty value`},
		{"node.labels.==a", `invalid constraint "node.labels.==a": empty label name in key node.labels.`},
		{"engine.labels.!=a", `invalid constraint "engine.labels.!=a": empty label name in key engine.labels.`},
		{"node labels.zone==a", `invalid constraint "node labels.zone==a": malformed key "node labels.zone"`},
		{"node.labels.zone==a==b", `invalid constraint "node.labels.zone==a==b": more than one operator`},
		{"node.labels.zone==a!=b", `invalid constraint "node.labels.zone==a!=b": more than one operator`},
		{"node.labels.zone!==a", `invalid constraint "node.labels.zone!==a": more than one operator`},
		{"node.role==boss", `invalid constraint "node.role==boss": node.role must be manager or worker, not "boss"`},
		{"node.ip==10.0.0.300", `invalid constraint "node.ip==10.0.0.300": node.ip must be an IP address or CIDR, not "10.0.0.300"`},
		{"node.ip==10.0.0.0/33", `invalid constraint "node.ip==10.0.0.0/33": node.ip must be an IP address or CIDR, not "10.0.0.0/33"`},
		{"node.ip==host-1", `invalid constraint "node.ip==host-1": node.ip must be an IP address or CIDR, not "host-1"`},
		{"node.ip==fe80::1%eth0", `invalid constraint "node.ip==fe80::1%eth0": node.ip must be an IP address or CIDR, not "fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cs, err := Parse([]string{tt.expr})
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.expr, cs)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %s\nwant    %s", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Expr != tt.expr {
				t.Errorf("error is not a *ParseError for %q: %#v", tt.expr, err)
			}
			if cs != nil {
				t.Errorf("constraints returned with an error: %v", cs)
			}
		})
	}
}

func TestParseKeepsOrderAndStopsAtFirstError(t *testing.T) {
	cs, err := Parse([]string{"node.role==worker", "node.labels.zone!=b", "node.hostname==h1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.String())
	}
	want := []string{"node.role==worker", "node.labels.zone!=b", "node.hostname==h1"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}

	_, err = Parse([]string{"node.role==worker", "node.x==1", "node.y==2"})
	if err == nil || err.Error() != `invalid constraint "node.x==1": unknown key node.x` {
		t.Fatalf("error = %v, want the first bad expression named", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range [][]string{nil, {}} {
		cs, err := Parse(in)
		if err != nil || cs != nil {
			t.Errorf("Parse(%#v) = %v, %v; want nil, nil", in, cs, err)
		}
	}
}

func TestOperatorString(t *testing.T) {
	if Equal.String() != "==" || NotEqual.String() != "!=" {
		t.Errorf("got %q %q", Equal, NotEqual)
	}
	if got := Operator(9).String(); got != "Operator(9)" {
		t.Errorf("unknown operator String() = %q", got)
	}
}

func TestNormalizeArch(t *testing.T) {
	tests := map[string]string{
		"x86_64":   "amd64",
		"X86_64":   "amd64",
		"x86-64":   "amd64",
		"amd64":    "amd64",
		"aarch64":  "arm64",
		"ARM64":    "arm64",
		"arm":      "arm",
		"s390x":    "s390x",
		" ppc64le": "ppc64le",
	}
	for in, want := range tests {
		if got := NormalizeArch(in); got != want {
			t.Errorf("NormalizeArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestZeroConstraint(t *testing.T) {
	var c Constraint
	if c.String() != "" || c.Key() != "" {
		t.Errorf("zero constraint renders as %q (key %q)", c.String(), c.Key())
	}
	if c.Match(node()) {
		t.Error("zero constraint matched a node")
	}
}
