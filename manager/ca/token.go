package ca

import (
	"errors"
	"fmt"

	"github.com/shoal-project/shoal/identity"
)

// ErrTokenCAMismatch is returned by ValidateToken for a well-formed token
// that pins another CA.
var ErrTokenCAMismatch = errors.New("join token does not match this cluster's CA")

// ValidateToken checks a join token presented by a joining node against
// the cluster's current worker and manager tokens and returns the role it
// grants.
//
// A malformed token gives an error wrapping identity.ErrInvalidJoinToken
// that names the problem. A token for another CA gives ErrTokenCAMismatch.
// A well-formed token for this CA that is not current (for example one
// that was rotated away) gives identity.ErrInvalidJoinToken itself, saying
// nothing more. Both current tokens are always compared, in constant time.
// An empty current token matches nothing.
func ValidateToken(presented, workerToken, managerToken, caDigest string) (identity.Role, error) {
	tok, err := identity.ParseJoinToken(presented)
	if err != nil {
		return 0, err
	}
	if !identity.TokensEqual(tok.Digest, caDigest) {
		return 0, ErrTokenCAMismatch
	}
	isWorker := workerToken != "" && identity.TokensEqual(presented, workerToken)
	isManager := managerToken != "" && identity.TokensEqual(presented, managerToken)
	switch {
	case isManager:
		return identity.RoleManager, nil
	case isWorker:
		return identity.RoleWorker, nil
	default:
		return 0, identity.ErrInvalidJoinToken
	}
}

// NewJoinTokens generates a fresh worker and manager token for this CA.
func (r *RootCA) NewJoinTokens() (workerToken, managerToken string, err error) {
	if workerToken, err = identity.GenerateJoinToken(r.Digest, nil); err != nil {
		return "", "", fmt.Errorf("generate worker join token: %w", err)
	}
	if managerToken, err = identity.GenerateJoinToken(r.Digest, nil); err != nil {
		return "", "", fmt.Errorf("generate manager join token: %w", err)
	}
	return workerToken, managerToken, nil
}
