package identity

import (
	"bytes"
	"fmt"
	"sync"
)

// Credentials holds a node's current parsed material and hands out TLS
// configurations that always use the latest certificate. It is safe for
// concurrent use. Create it with NewCredentials; the zero value holds no
// material and is not usable.
//
// A Credentials value is bound to one root CA, cluster ID and node ID for
// its whole life: Update accepts renewed certificates (including a role
// change) but refuses material for another root, cluster or node. A node
// that changes any of those builds a new Credentials and new listeners.
type Credentials struct {
	mu  sync.RWMutex
	cur *Parsed
}

// NewCredentials parses m and returns Credentials holding it.
func NewCredentials(m Material) (*Credentials, error) {
	p, err := m.Parse()
	if err != nil {
		return nil, err
	}
	return &Credentials{cur: p}, nil
}

// Current returns the material in use. The result must not be modified.
func (c *Credentials) Current() *Parsed {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// Update parses m and, if it is for the same root CA, cluster and node,
// makes it current. Handshakes started afterwards present the new
// certificate; established connections are not affected.
func (c *Credentials) Update(m Material) error {
	p, err := m.Parse()
	if err != nil {
		return fmt.Errorf("update credentials: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur
	if !bytes.Equal(p.Root.Raw, old.Root.Raw) {
		return fmt.Errorf("update credentials: root CA %s differs from current root CA %s",
			CADigest(p.Root.Raw), CADigest(old.Root.Raw))
	}
	if p.Identity.ClusterID != old.Identity.ClusterID {
		return fmt.Errorf("update credentials: cluster ID %q differs from current cluster ID %q",
			p.Identity.ClusterID, old.Identity.ClusterID)
	}
	if p.Identity.NodeID != old.Identity.NodeID {
		return fmt.Errorf("update credentials: node ID %q differs from current node ID %q",
			p.Identity.NodeID, old.Identity.NodeID)
	}
	c.cur = p
	return nil
}
