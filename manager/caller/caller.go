// Package caller carries the authenticated identity of an RPC's caller in
// its context: the node a request came from and the role its certificate
// gives it, whether it arrived directly or forwarded by another manager.
// It must not import anything from manager/ beyond itself.
package caller

import "context"

// Role is what a caller may do.
type Role int

// Roles, from least to most privileged.
const (
	// Anonymous callers have no certificate (nodes that are joining).
	Anonymous Role = iota
	Worker
	Manager
)

func (r Role) String() string {
	switch r {
	case Worker:
		return "worker"
	case Manager:
		return "manager"
	}
	return "anonymous"
}

// Caller is who made a request.
type Caller struct {
	NodeID string
	Role   Role
	// Forwarded is true when another manager relayed the request.
	Forwarded bool
}

type key struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c Caller) context.Context { return context.WithValue(ctx, key{}, c) }

// From returns the caller in ctx, or an anonymous caller.
func From(ctx context.Context) Caller {
	c, _ := ctx.Value(key{}).(Caller)
	return c
}
