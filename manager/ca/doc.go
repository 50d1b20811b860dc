// Package ca owns the cluster's root certificate authority as run by the
// managers: creating and loading the root key pair, issuing node
// certificates from certificate signing requests with an identity the
// managers decide, and checking presented join tokens against the current
// ones.
//
// It builds on package identity for token and certificate formats. It must
// not import raft, grpc, manager/store or worker/: persistence of the root
// key and tokens, and the RPCs that use them, belong to the callers.
package ca
