// Package overlay is a node's overlay data plane: the kernel state that
// carries task traffic across nodes, balances service VIPs and publishes
// ports, on a kernel with VXLAN, bridges, veths, nftables and conntrack but
// no IPVS and no IPsec. A Manager owns, on its node:
//
//   - one sandbox namespace per overlay network (StateDir/netns/ov-<vni>)
//     holding br0 and vxlan0 (learning off, proxy ARP, explicit local
//     address and port, MTU = underlay - 50). vxlan0 is created in the
//     node's namespace and moved in, so its UDP socket uses the node's
//     routing; bridged frames skip the sandbox's netfilter hooks;
//   - the permanent neighbour (IP -> MAC) and FDB (MAC -> VTEP) entries of
//     every remote endpoint, on vxlan0; nothing is flooded between nodes;
//   - each task's interfaces: eth0, eth1, … (a veth from the network's br0
//     per attachment) and a last one on the egress bridge, which carries
//     the default route and is masqueraded behind the node's address;
//   - each task's nftables table shoal-lb: its reachable VIPs, DNATed on
//     the first packet to a random backend (no backends: refused);
//   - in the node's namespace: the egress bridge and table shoal-egress;
//     the ingress endpoint (IngressLink, a veth into the ingress network's
//     sandbox) and table shoal-mesh for published ports (ingress mode:
//     DNAT to the tasks' ingress addresses, masqueraded out of the ingress
//     endpoint; host mode: DNAT to local tasks' egress addresses, client
//     address kept), with a reserving socket per port; table shoal-vxlan,
//     dropping data-path packets from non-members.
//
// Nothing uses fixed global paths or names outside the node's namespace and
// StateDir, so several nodes can share a machine, each in its own
// namespace. Every netlink and nftables operation addresses a namespace by
// handle or file descriptor; code that has to enter a namespace does so on
// a locked OS thread that is returned to its namespace before it is
// unlocked (internal/nsutil).
//
// It must not import manager/, worker/, node/, raftstore/ or gRPC: the
// daemon feeds it plain values (from its task assignments, the endpoint
// table gossiped by overlay/netdb and its memberlist members). overlay/dns
// (the per-task resolver) is separate; it may add its own table to a task's
// namespace but must not touch the tables named above.
//
// # Wiring
//
// The daemon (package node, or the worker's executor through an interface)
// drives a Manager as follows. Every method is idempotent and safe to call
// again with the same arguments; "full state" methods replace what they
// had.
//
//  1. Start: m, err := overlay.New(ctx, overlay.Config{StateDir:
//     <data-dir>/overlay, DataPathAddr: <data-path address>, DataPathPort:
//     <cluster's port>, EgressSubnet: <a free local /16 or /24>}). In
//     production NetNSPath is empty: the daemon's own namespace. New
//     creates the node-level plumbing and finds the sandboxes a previous
//     run left; their traffic keeps flowing untouched.
//  2. m.Reconcile(ctx, overlay.Desired{Networks: networks of the tasks
//     the node still runs, plus ingress; Tasks: their IDs}) removes the
//     rest.
//  3. m.EnsureIngress(ctx, ingressNetwork, nodeIngressAddr) once the node
//     has its ingress address, and publish that address as a peer record
//     (this node's data-path address as VTEP) in the ingress network's
//     endpoint table. When the ingress network is removed or replaced:
//     withdraw that record, m.RemoveIngress(ctx), and m.RemoveNetwork for
//     the old network once no local task uses it; then EnsureIngress with
//     the new one.
//  4. Per task that uses overlay networks, after its container is created
//     (it needs the container's PID or netns path) and before it starts
//     its process: m.EnsureNetwork(ctx, n) for each of its networks, then
//     m.AttachTask(ctx, overlay.Task{ID, PID, Attachments}); publish each
//     attachment (IP, MAC, VTEP) in the endpoint table. On restart, call
//     AttachTask again for every running task. When the task's container
//     stops: m.DetachTask(ctx, id) (the namespace handle is held until
//     then), and withdraw its records; when no local task is left on a
//     network: m.RemoveNetwork(ctx, id).
//  5. On endpoint-table events for a network the node has joined:
//     m.AddPeer / m.RemovePeer(ctx, network, overlay.Peer{IP, MAC, VTEP}),
//     or m.SetPeers with the whole table (after a bulk sync, and once per
//     network after a restart, to drop entries that went away meanwhile).
//     Records with this node's VTEP are ignored, so the whole table can be
//     passed.
//  6. On any change of a network's services or their tasks:
//     m.SetServices(ctx, network, []overlay.Service{{ID, VIP, Backends}}),
//     with every service that has a VIP on the network (call it with none
//     too: a task's table is only rewritten once all its networks' services
//     are known).
//  7. On any change of published ports or the tasks behind them:
//     m.SetPublishedPorts(ctx, ports) with every port published on this
//     node: ingress-mode ports of all services (Backends: their tasks'
//     ingress addresses on every node) and host-mode ports of local tasks
//     (Tasks: their IDs).
//  8. On memberlist join/leave: m.SetClusterPeers(ctx, data-path addresses
//     of all nodes).
//  9. Daemon stop: m.Close() (kernel state stays, for step 1 next time).
//     Node leaving the swarm: m.Teardown(ctx).
//
// The embedded resolver (overlay/dns) sends its upstream queries from the
// node's own namespace, not through a task's egress interface, so tasks
// on internal networks resolve outside names too, and loopback upstreams
// of the node are reachable.
package overlay
