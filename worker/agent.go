package worker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Config configures the agent.
type Config struct {
	Logger *slog.Logger
	// Dial returns a (cached) mutual-TLS connection to a manager.
	Dial func(ctx context.Context, addr string) (grpc.ClientConnInterface, error)
	// Managers returns the manager addresses known now.
	Managers func() []*shoalpb.Peer
	// Describe returns the node's description.
	Describe      func() *shoalpb.NodeDescription
	AdvertiseAddr string
	GossipAddr    string
	// OnResponse sees every successful heartbeat's answer.
	OnResponse func(*shoalpb.HeartbeatResponse)
	// OnRemoved is called when the managers no longer know this node.
	OnRemoved func(error)
	// InitialPeriod is used until a manager says otherwise.
	InitialPeriod time.Duration
}

// Agent keeps a node's heartbeat session with the managers.
type Agent struct {
	cfg Config
}

// NewAgent returns an agent.
func NewAgent(cfg Config) *Agent { return &Agent{cfg: cfg} }

// rpcTimeout bounds one heartbeat; a follower may wait a few seconds for a
// leader before it answers.
const rpcTimeout = 5 * time.Second

// Run sends heartbeats until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	period := a.cfg.InitialPeriod
	if period <= 0 {
		period = time.Second
	}
	preferred := ""
	backoff := 100 * time.Millisecond
	for {
		resp, used, err := a.beat(ctx, preferred)
		wait := period
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if code := status.Code(err); code == codes.NotFound || code == codes.PermissionDenied {
				if a.cfg.OnRemoved != nil {
					a.cfg.OnRemoved(err)
				}
			}
			a.cfg.Logger.Debug("heartbeat failed", "manager", used, "err", err)
			preferred = ""
			wait = backoff
			backoff = min(backoff*2, period)
		} else {
			backoff = 100 * time.Millisecond
			if p := time.Duration(resp.PeriodNs); p > 0 {
				period = p
			}
			preferred = leaderAddr(resp)
			if a.cfg.OnResponse != nil {
				a.cfg.OnResponse(resp)
			}
			// Spread heartbeats so a fleet does not beat in step.
			wait = time.Duration(float64(period) * (0.9 + 0.1*rand.Float64()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func leaderAddr(resp *shoalpb.HeartbeatResponse) string {
	for _, m := range resp.Managers {
		if m.NodeId == resp.LeaderId {
			return m.Addr
		}
	}
	return ""
}

// beat sends one heartbeat, to the preferred manager first and then to the
// others in turn.
func (a *Agent) beat(ctx context.Context, preferred string) (*shoalpb.HeartbeatResponse, string, error) {
	candidates := []string{}
	if preferred != "" {
		candidates = append(candidates, preferred)
	}
	for _, m := range a.cfg.Managers() {
		if m.Addr != preferred {
			candidates = append(candidates, m.Addr)
		}
	}
	if len(candidates) == 0 {
		return nil, "", status.Error(codes.Unavailable, "no manager is known")
	}
	req := &shoalpb.HeartbeatRequest{Description: a.cfg.Describe(), AdvertiseAddr: a.cfg.AdvertiseAddr, GossipAddr: a.cfg.GossipAddr}
	var lastErr error
	for _, addr := range candidates {
		conn, err := a.cfg.Dial(ctx, addr)
		if err != nil {
			lastErr = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		sent := time.Now()
		resp, err := shoalpb.NewDispatcherClient(conn).Heartbeat(cctx, req)
		cancel()
		if took := time.Since(sent); took > time.Second {
			// Heartbeats this slow put the node at risk of being declared
			// Down (after three missed periods).
			a.cfg.Logger.Debug("slow heartbeat", "manager", addr, "took", took, "err", err)
		}
		if err == nil {
			return resp, addr, nil
		}
		lastErr = err
		if c := status.Code(err); c == codes.NotFound || c == codes.PermissionDenied {
			return nil, addr, err
		}
	}
	return nil, candidates[len(candidates)-1], lastErr
}
