// Package node is the daemon: it owns the data directory and the local
// control socket, and wires the manager, the worker agent, gossip, the
// cluster port and overlay networking together. It carries a node through
// swarm init, join and leave, resumes a node's membership after a restart,
// and changes the node's role at runtime when it is promoted or demoted.
//
// Overlay networking (overlay*.go) runs while the node is in a swarm: the
// data plane (overlay), the endpoint table gossiped with the other nodes
// (overlay/netdb), the attachment of tasks' sandbox containers for the
// Docker executor and one DNS resolver per task (overlay/dns). Its
// configuration comes with every heartbeat response.
//
// Nothing imports node except cmd/.
package node
