package identity_test

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/identity"
)

func TestRole(t *testing.T) {
	tests := []struct {
		role     identity.Role
		str, ou  string
		valid    bool
		numValue int
	}{
		{identity.RoleWorker, "worker", "shoal-worker", true, 0},
		{identity.RoleManager, "manager", "shoal-manager", true, 1},
		{identity.Role(7), "Role(7)", "", false, 7},
	}
	for _, tt := range tests {
		if got := tt.role.String(); got != tt.str {
			t.Errorf("Role(%d).String() = %q, want %q", int(tt.role), got, tt.str)
		}
		if got := tt.role.OU(); got != tt.ou {
			t.Errorf("Role(%d).OU() = %q, want %q", int(tt.role), got, tt.ou)
		}
		if got := tt.role.Valid(); got != tt.valid {
			t.Errorf("Role(%d).Valid() = %v", int(tt.role), got)
		}
		if int(tt.role) != tt.numValue {
			t.Errorf("role %s has value %d, want %d", tt.role, int(tt.role), tt.numValue)
		}
		if tt.valid {
			back, err := identity.RoleFromOU(tt.ou)
			if err != nil || back != tt.role {
				t.Errorf("RoleFromOU(%q) = %v, %v", tt.ou, back, err)
			}
		}
	}
	if _, err := identity.RoleFromOU("shoal-admin"); err == nil || !strings.Contains(err.Error(), `"shoal-admin"`) {
		t.Errorf("RoleFromOU(shoal-admin): err = %v, want one naming the value", err)
	}
}

func TestIdentityValidate(t *testing.T) {
	good := identity.Identity{NodeID: "n1", ClusterID: "c1", Role: identity.RoleManager}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []identity.Identity{
		{ClusterID: "c1"},
		{NodeID: "n1"},
		{NodeID: "n1", ClusterID: "c1", Role: 9},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) succeeded", bad)
		}
	}
}

func TestIdentityFromCert(t *testing.T) {
	ca := newTestCA(t)
	key, _, err := identity.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{NodeID: "node-1", ClusterID: "cluster-1", Role: identity.RoleWorker}
	got, err := identity.IdentityFromCert(ca.sign(t, subjectFor(want), key.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("identity = %+v, want %+v", got, want)
	}

	tests := []struct {
		name    string
		subject pkix.Name
		want    string
	}{
		{"no CN", pkix.Name{OrganizationalUnit: []string{"shoal-worker"}, Organization: []string{"c"}}, "no common name"},
		{"no O", pkix.Name{CommonName: "n", OrganizationalUnit: []string{"shoal-worker"}}, "exactly one organization"},
		{"two O", pkix.Name{CommonName: "n", OrganizationalUnit: []string{"shoal-worker"}, Organization: []string{"a", "b"}}, "exactly one organization"},
		{"no OU", pkix.Name{CommonName: "n", Organization: []string{"c"}}, "exactly one organizational unit"},
		{"two OU", pkix.Name{CommonName: "n", OrganizationalUnit: []string{"shoal-worker", "shoal-manager"}, Organization: []string{"c"}}, "exactly one organizational unit"},
		{"unknown OU", pkix.Name{CommonName: "n", OrganizationalUnit: []string{"admins"}, Organization: []string{"c"}}, `unknown role "admins"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.IdentityFromCert(ca.sign(t, tt.subject, key.Public()))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := identity.IdentityFromCert(nil); err == nil {
		t.Error("nil certificate: want error")
	}
}
