// Package allocator owns the managers' network allocations: overlay
// network identifiers (VNIs), network subnets carved from the cluster's
// default address pools, the addresses of tasks, service VIPs and nodes'
// ingress endpoints inside a network's subnet, the MAC addresses derived
// from them, and the ports services publish on the routing mesh.
//
// It has two halves:
//
//   - pure allocators on net/netip (NetworkConfig, NextSubnet, NextVNI,
//     AddrPool, Ports, MACFromIP) and the validation of what users ask for
//     (ParseIPAM). The control API uses them to create networks; the
//     daemon uses them to create the cluster's ingress network at init;
//   - a leader-only loop (Allocator) that gives services their Endpoint
//     (VIPs, published ports), every node an address on the ingress
//     network (Node.attachments, its routing-mesh endpoint), and NEW tasks
//     their NetworkAttachments, then moves the tasks to PENDING for the
//     scheduler. It runs like the
//     orchestrators (orchestrator.Run): it rebuilds its state from the
//     store at the start of every term, keeps nothing anywhere but the
//     store, and writes through a store.Proposer in batches. A task that
//     cannot be given an address stays NEW with the reason in its status
//     and is retried when addresses are freed.
//
// Addresses, VIPs and ports are freed when their holder no longer needs
// them: a task once it has stopped (or, never started, is no longer
// wanted) or is deleted, a service when it is removed or its spec stops
// asking for them, a node when it is removed. Nothing is written to free them: the store says who
// holds what, and the loop's state is rebuilt from it.
//
// It must not import raft, gRPC, worker/, node/ or raftstore/: the loop is
// tested on a store with no replication.
package allocator
