// Package identity owns the trust material a Shoal node carries: join
// tokens, the node's private key and certificate signing request, the
// node certificate and the cluster root certificate on disk, the identity
// (node ID, cluster ID, role) encoded in a certificate, and the TLS
// configurations built from that material for the cluster API.
//
// It is shared by the worker, the manager and the daemon, so it must stay
// at the bottom of the dependency graph: it must not import anything under
// manager/, worker/, node/ or raftstore/, and it depends on nothing but the
// standard library.
//
// Certificate layout. A node certificate carries the node ID in the
// subject common name (CN), the role in the organizational unit (OU,
// "shoal-manager" or "shoal-worker") and the cluster ID in the
// organization (O). Certificates carry no subject alternative names:
// peers are addressed by IP and authenticated by chain and cluster ID,
// never by host name.
package identity
