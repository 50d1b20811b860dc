package identity

import (
	"crypto/x509"
	"fmt"
)

// Role is the part a node plays in the cluster. The numeric values match
// the NodeRole enum of the cluster API.
type Role int

const (
	// RoleWorker runs tasks and talks to the managers.
	RoleWorker Role = 0
	// RoleManager holds cluster state and serves the cluster API.
	RoleManager Role = 1
)

// Organizational unit values that encode a Role in a certificate.
const (
	OUWorker  = "shoal-worker"
	OUManager = "shoal-manager"
)

// String returns "worker" or "manager".
func (r Role) String() string {
	switch r {
	case RoleWorker:
		return "worker"
	case RoleManager:
		return "manager"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleWorker || r == RoleManager
}

// OU returns the certificate organizational unit for r, or "" when r is
// not a known role.
func (r Role) OU() string {
	switch r {
	case RoleWorker:
		return OUWorker
	case RoleManager:
		return OUManager
	default:
		return ""
	}
}

// RoleFromOU maps a certificate organizational unit back to a Role.
func RoleFromOU(ou string) (Role, error) {
	switch ou {
	case OUWorker:
		return RoleWorker, nil
	case OUManager:
		return RoleManager, nil
	default:
		return 0, fmt.Errorf("unknown role %q: want %q or %q", ou, OUWorker, OUManager)
	}
}

// Identity is who a node certificate says its holder is.
type Identity struct {
	NodeID    string
	ClusterID string
	Role      Role
}

// Validate checks that every field is set and the role is known.
func (id Identity) Validate() error {
	if id.NodeID == "" {
		return fmt.Errorf("identity %+v: node ID is empty", id)
	}
	if id.ClusterID == "" {
		return fmt.Errorf("identity %+v: cluster ID is empty", id)
	}
	if !id.Role.Valid() {
		return fmt.Errorf("identity %+v: unknown role %s", id, id.Role)
	}
	return nil
}

// IdentityFromCert reads the node ID (CN), cluster ID (O) and role (OU)
// from a node certificate. It requires exactly one O and one OU value and a
// non-empty CN; it does not verify the certificate.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("read identity: certificate is nil")
	}
	subj := cert.Subject
	if subj.CommonName == "" {
		return Identity{}, fmt.Errorf("certificate %q (serial %s): no common name (node ID)", subj, cert.SerialNumber)
	}
	if len(subj.Organization) != 1 || subj.Organization[0] == "" {
		return Identity{}, fmt.Errorf("certificate %q (serial %s): want exactly one organization (cluster ID), have %q",
			subj, cert.SerialNumber, subj.Organization)
	}
	if len(subj.OrganizationalUnit) != 1 {
		return Identity{}, fmt.Errorf("certificate %q (serial %s): want exactly one organizational unit (role), have %q",
			subj, cert.SerialNumber, subj.OrganizationalUnit)
	}
	role, err := RoleFromOU(subj.OrganizationalUnit[0])
	if err != nil {
		return Identity{}, fmt.Errorf("certificate %q (serial %s): %w", subj, cert.SerialNumber, err)
	}
	return Identity{NodeID: subj.CommonName, ClusterID: subj.Organization[0], Role: role}, nil
}
