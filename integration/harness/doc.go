// Package harness is the multi-host test harness for shoal's integration
// tests.
//
// It owns everything a test needs to run several shoal daemons as if they
// were separate machines on one LAN:
//
//   - building the shoal binary once per test process (BuildShoal);
//   - a Lab: a private network namespace holding a Linux bridge "br0" (the
//     LAN), with every test host in its own network namespace attached to
//     the bridge through a veth pair, addressed 198.18.0.N/16. The bridge
//     never lives in the root namespace and nothing is routed out of the
//     lab; IPv6 is disabled in lab namespaces so no other addresses exist;
//   - the daemon process of every host (Host.Start, Stop, Kill, Restart),
//     started with nsenter inside the host namespace, with its output kept
//     in a per-host log file that is printed when a test fails. Its
//     overlay networking stays in the test range and in the lab: the
//     egress bridge takes EgressSubnet and tasks' resolvers forward to the
//     host namespace's loopback, where nothing answers;
//   - fault injection: cutting a host off the LAN (Partition, Heal) and
//     dropping traffic between selected hosts with nftables (Block, Unblock,
//     UnblockAll);
//   - running the shoal CLI against a host's unix socket (CLI, MustCLI) and
//     arbitrary commands inside a host's namespace (Exec);
//   - cleanup of every namespace, process and file it creates (mounts the
//     daemons left in their data directories, such as the overlay's
//     sandbox namespaces, included), including namespaces and directories
//     left behind by earlier test processes that died.
//
// The harness drives the shoal binary only, through its command line and
// its sockets. It must not import the manager/, worker/ or raftstore/
// packages (or any other shoal internals): tests built on it exercise the
// shipped binary as a user would.
//
// The harness needs root and the ip, nsenter and nft tools; tests should
// call RequireRoot first so they skip cleanly elsewhere.
//
// Environment:
//
//	SHOAL_KEEP_LAB=1  keep each lab's directory (data dirs, logs) after the
//	                  test and log its location; namespaces and processes
//	                  are still removed.
package harness
