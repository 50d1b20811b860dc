// Package membership admits nodes to the cluster and keeps the Raft voter
// set equal to the managers the cluster wants: it serves the CA service
// (JoinCluster, RenewCertificate) and the RaftMembership service, and runs
// the leader's role reconciler, which adds and removes voters without ever
// breaking quorum and hands leadership over before the leader is demoted.
//
// It must not import worker/, node/, cmd/ or the gRPC transport wiring.
package membership
