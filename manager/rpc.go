package manager

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/shoal-project/shoal/identity"
	"github.com/shoal-project/shoal/manager/caller"
	"github.com/shoal-project/shoal/manager/store"
	// The generated API package registers the service descriptors that
	// newReply looks up.
	_ "github.com/shoal-project/shoal/proto/shoalpb"
)

// Metadata keys a manager sets when it forwards a call to the leader.
const (
	mdForwardedNode = "shoal-forwarded-node"
	mdForwardedRole = "shoal-forwarded-role"
)

// leaderWait is how long a follower waits for a leader to appear before it
// answers that there is no quorum.
const leaderWait = 3 * time.Second

// minRole is the least privileged role allowed to call each service.
func minRole(fullMethod string) caller.Role {
	switch {
	case fullMethod == "/shoal.v1.CA/JoinCluster":
		return caller.Anonymous
	case strings.HasPrefix(fullMethod, "/shoal.v1.CA/"), strings.HasPrefix(fullMethod, "/shoal.v1.Dispatcher/"):
		return caller.Worker
	case fullMethod == "/shoal.v1.Logs/ListenSubscriptions", fullMethod == "/shoal.v1.Logs/PublishLogs":
		return caller.Worker
	}
	return caller.Manager
}

// verifiesLeadership lists the calls that read state and so confirm,
// before answering, that this manager still leads (linearizable reads).
func verifiesLeadership(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/shoal.v1.Control/")
}

// authenticate finds the caller of an incoming call from its TLS
// certificate, or from forwarding metadata when a manager relayed it.
func (m *Manager) authenticate(ctx context.Context) (caller.Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return caller.Caller{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return caller.Caller{}, status.Error(codes.Unauthenticated, "connection is not TLS")
	}
	id, ok := identity.PeerIdentity(info.State)
	if !ok {
		return caller.Caller{Role: caller.Anonymous}, nil
	}
	c := caller.Caller{NodeID: id.NodeID, Role: caller.Worker}
	if id.Role == identity.RoleManager {
		c.Role = caller.Manager
	}
	if m.removed(c.NodeID) {
		return caller.Caller{}, status.Errorf(codes.PermissionDenied, "node %s has been removed from the swarm", c.NodeID)
	}
	if c.Role == caller.Manager {
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(mdForwardedRole)) > 0 {
			f := caller.Caller{Forwarded: true}
			if v := md.Get(mdForwardedNode); len(v) > 0 {
				f.NodeID = v[0]
			}
			switch md.Get(mdForwardedRole)[0] {
			case "manager":
				f.Role = caller.Manager
			case "worker":
				f.Role = caller.Worker
			}
			if f.NodeID != "" && m.removed(f.NodeID) {
				return caller.Caller{}, status.Errorf(codes.PermissionDenied, "node %s has been removed from the swarm", f.NodeID)
			}
			return f, nil
		}
	}
	return c, nil
}

func (m *Manager) removed(nodeID string) bool {
	var removed bool
	m.store.View(func(tx store.ReadTx) { removed = slices.Contains(tx.Cluster().GetRemovedNodes(), nodeID) })
	return removed
}

// UnaryInterceptor authenticates and authorises every call, then serves it
// here when this manager leads or forwards it to the leader.
func (m *Manager) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c, err := m.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if c.Role < minRole(info.FullMethod) {
		return nil, status.Errorf(codes.PermissionDenied, "%s: a %s may not call this; it needs a %s certificate", info.FullMethod, c.Role, minRole(info.FullMethod))
	}
	ctx = caller.With(ctx, c)
	return m.serveOrForward(ctx, c, req, info.FullMethod, func(ctx context.Context) (any, error) { return handler(ctx, req) })
}

// StreamInterceptor authenticates and authorises streaming calls, which
// are served where they arrive.
func (m *Manager) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := m.authenticate(ss.Context())
	if err != nil {
		return err
	}
	if c.Role < minRole(info.FullMethod) {
		return status.Errorf(codes.PermissionDenied, "%s: a %s may not call this; it needs a %s certificate", info.FullMethod, c.Role, minRole(info.FullMethod))
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: caller.With(ss.Context(), c)})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (m *Manager) serveOrForward(ctx context.Context, c caller.Caller, req any, method string, local func(context.Context) (any, error)) (any, error) {
	deadline := time.Now().Add(leaderWait)
	var lastErr error
	for {
		if m.raft.IsLeader() {
			if verifiesLeadership(method) {
				vctx, cancel := context.WithTimeout(ctx, leaderWait)
				err := m.raft.VerifyLeader(vctx)
				cancel()
				if err != nil {
					return nil, status.Errorf(codes.Unavailable, "%s (%v)", errNoLeader, err)
				}
			}
			return local(ctx)
		}
		leaderID, addr := m.raft.Leader()
		// A follower that has not heard from its leader lately may be cut
		// off from it: wait for a fresh leader rather than send the call
		// into a partition.
		if leaderID != "" && leaderID != m.cfg.NodeID && time.Since(m.raft.LastContact()) < staleLeaderContact {
			if c.Forwarded {
				return nil, status.Error(codes.Unavailable, "the leader changed while the request was forwarded; retry")
			}
			reply, err := m.forward(ctx, c, req, method, addr)
			if err == nil || !notDelivered(err) {
				return reply, err
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return nil, status.Errorf(codes.Unavailable, "%s (last attempt: %v)", errNoLeader, status.Convert(lastErr).Message())
			}
			return nil, status.Error(codes.Unavailable, errNoLeader.Error())
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// staleLeaderContact is how long a follower may go without hearing from
// its leader before it stops forwarding to it.
const staleLeaderContact = time.Second

// forwardTimeout bounds a forwarded call, so a leader lost mid-call is
// noticed even when its connection hangs.
const forwardTimeout = 15 * time.Second

// notDelivered reports whether a forwarded call failed before reaching
// the leader (so it is safe to try again).
func notDelivered(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	return strings.Contains(msg, "while dialing") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no route to host")
}

func (m *Manager) forward(ctx context.Context, c caller.Caller, req any, method, addr string) (any, error) {
	reply, err := newReply(method)
	if err != nil {
		return nil, err
	}
	conn, err := m.cfg.Dial(ctx, addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reach the leader at %s: %v", addr, err)
	}
	md := metadata.Pairs(mdForwardedRole, c.Role.String(), mdForwardedNode, c.NodeID)
	if c.Role == caller.Anonymous {
		md = metadata.Pairs(mdForwardedRole, "anonymous")
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	if err := conn.Invoke(ctx, method, req, reply); err != nil {
		return nil, err
	}
	return reply, nil
}

// newReply makes an empty response message for a full method name, from
// the registered service descriptors.
func newReply(fullMethod string) (proto.Message, error) {
	name := strings.TrimPrefix(fullMethod, "/")
	svc, meth, ok := strings.Cut(name, "/")
	if !ok {
		return nil, status.Errorf(codes.Internal, "malformed method %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unknown service %q: %v", svc, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, status.Errorf(codes.Internal, "%q is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(meth))
	if md == nil {
		return nil, status.Errorf(codes.Internal, "unknown method %q", fullMethod)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unknown reply type of %q: %v", fullMethod, err)
	}
	return mt.New().Interface(), nil
}
