// Package constraint owns docker-style placement constraints: parsing the
// expressions a service lists in its placement (node.labels.zone==a,
// node.role!=manager, ...) and deciding whether a node satisfies them.
//
// Supported keys, matched case-insensitively:
//
//	node.id                 the node's ID
//	node.hostname           the hostname the node reports
//	node.role               manager or worker (the node's observed role)
//	node.platform.os        the operating system the node reports
//	node.platform.arch      the architecture the node reports
//	node.labels.<label>     a label the operator set on the node
//	engine.labels.<label>   a label the node's engine reports
//	node.ip                 an IP address or CIDR, checked against the
//	                        address in the node's status
//
// Values are compared as follows. node.hostname, node.role,
// node.platform.os and node.platform.arch compare case-insensitively, and
// the architecture is normalised first so that docker's aliases agree
// (x86_64 and x86-64 mean amd64, aarch64 means arm64). node.id and both
// kinds of labels compare exactly, as IDs and labels are case-sensitive
// map data; label names are likewise taken exactly as written. A node
// that lacks the attribute (no such label, no hostname, no parsable
// address) fails every == constraint on it and satisfies every != one.
//
// The package is pure: it must not import gRPC, raft, manager/store,
// raftstore or worker/, does no I/O and never reads a clock.
package constraint
