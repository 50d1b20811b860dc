// Package node is the daemon: it owns the data directory and the local
// control socket, and wires the manager, the worker agent, gossip and the
// cluster port together. It carries a node through swarm init, join and
// leave, resumes a node's membership after a restart, and changes the
// node's role at runtime when it is promoted or demoted.
//
// Nothing imports node except cmd/.
package node
