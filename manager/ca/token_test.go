package ca_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/ca"
)

func TestValidateToken(t *testing.T) {
	r := newCA(t, testNow)
	worker, manager, err := r.NewJoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	if worker == manager {
		t.Fatal("worker and manager tokens are equal")
	}

	role, err := ca.ValidateToken(worker, worker, manager, r.Digest)
	if err != nil || role != identity.RoleWorker {
		t.Fatalf("worker token: role %v, err %v", role, err)
	}
	role, err = ca.ValidateToken(manager, worker, manager, r.Digest)
	if err != nil || role != identity.RoleManager {
		t.Fatalf("manager token: role %v, err %v", role, err)
	}

	// Rotating the worker token refuses the old one, keeps the manager one.
	rotated, err := identity.GenerateJoinToken(r.Digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.ValidateToken(worker, rotated, manager, r.Digest)
	if err == nil || err.Error() != "invalid join token" || !errors.Is(err, identity.ErrInvalidJoinToken) {
		t.Fatalf("rotated token: err = %v, want exactly \"invalid join token\"", err)
	}
	if role, err := ca.ValidateToken(manager, rotated, manager, r.Digest); err != nil || role != identity.RoleManager {
		t.Fatalf("manager token after worker rotation: role %v, err %v", role, err)
	}

	// A token for another CA names the CA mismatch.
	other := newCA(t, testNow)
	foreign, _, err := other.NewJoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.ValidateToken(foreign, worker, manager, r.Digest)
	if !errors.Is(err, ca.ErrTokenCAMismatch) || err.Error() != "join token does not match this cluster's CA" {
		t.Fatalf("foreign token: err = %v", err)
	}

	// Malformed tokens name the problem.
	_, err = ca.ValidateToken("abc", worker, manager, r.Digest)
	if !errors.Is(err, identity.ErrInvalidJoinToken) || !strings.Contains(err.Error(), "must start with SHLTKN-1-") {
		t.Fatalf("malformed token: err = %v", err)
	}
	_, err = ca.ValidateToken(worker[:len(worker)-1], worker, manager, r.Digest)
	if err == nil || !strings.Contains(err.Error(), "secret must be 25") {
		t.Fatalf("truncated token: err = %v", err)
	}

	// With no current tokens nothing is accepted.
	if _, err := ca.ValidateToken(worker, "", "", r.Digest); !errors.Is(err, identity.ErrInvalidJoinToken) {
		t.Fatalf("no current tokens: err = %v", err)
	}
}
