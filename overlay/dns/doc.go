// Package dns is the embedded DNS resolver every task on an overlay
// network queries at 127.0.0.11:53.
//
// It owns, per task, the resolver's UDP and TCP sockets inside the task's
// network namespace, the answers for cluster names, the forwarding of every
// other name to the node's upstream servers, and the task's resolv.conf
// content. It does not decide what the names are: the daemon gives each
// resolver a Records (usually a Union of one Table per network the task is
// attached to, kept up to date from the gossiped endpoint table).
//
// Answers, for a name matched without regard to case, with or without a
// trailing dot, and with or without one of the configured search domains:
//
//   - <service> or one of its aliases: the service's VIP, or the IPs of all
//     its tasks when the service has no VIP (DNS round robin);
//   - tasks.<service> (or tasks.<alias>): the IPs of all its tasks;
//   - <task name>: the task's IP;
//   - PTR of a task IP: the task's name (of a VIP: the service's name).
//
// Only A records are answered; any other type for a cluster name gets an
// empty NOERROR answer. Several addresses come in random order. TTLs are
// short (Config.TTL), because tasks come and go. Names that are not the
// cluster's are forwarded to the node's upstream servers, from the node's
// own network namespace (a task may have no route out); when none of them
// answers, the answer is SERVFAIL.
//
// The sockets are created on an OS thread locked to its goroutine and
// switched into the task's namespace (setns); the thread is switched back
// before it is unlocked, and if that fails it is left locked so the Go
// runtime discards it. Serving then happens on ordinary goroutines: a
// socket stays in the namespace it was created in.
//
// What the daemon calls, per task on an overlay network:
//
//  1. Once per node: rc := ParseResolvConf(host's /etc/resolv.conf); keep a
//     Table per joined network, fed from the endpoint table's events.
//  2. Before the task starts: write TaskResolvConf(rc.Search) where the
//     task's /etc/resolv.conf is mounted from.
//  3. Once its namespace exists and lo is up: Start(Config{NetNS:
//     NetNSPath("/proc/<pid>/ns/net") or NetNSFD(fd), Records: Union of
//     the tables of the task's networks, Upstreams: rc.Upstreams(),
//     SearchDomains: rc.Search}).
//  4. When the host's resolv.conf changes: SetUpstreams; when the task's
//     networks change: SetRecords.
//  5. When the task stops: Close. A restarted daemon starts a resolver
//     again for every running task: the sockets died with the old process.
//
// This package must not import manager/, worker/, node/, overlay/netdb or
// gRPC.
package dns
