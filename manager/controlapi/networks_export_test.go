package controlapi

import (
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// AllocateNetworkForTest exposes allocateNetwork to the package's external
// tests.
func (s *Server) AllocateNetworkForTest(tx store.ReadTx, spec *shoalpb.NetworkSpec, pending []*shoalpb.Network) (*shoalpb.Network, error) {
	return s.allocateNetwork(tx, spec, pending)
}
