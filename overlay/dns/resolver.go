package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// Defaults for Config.
var (
	// DefaultAddr is where tasks find the resolver.
	DefaultAddr = netip.MustParseAddrPort("127.0.0.11:53")
)

const (
	// DefaultTTL is the TTL of cluster answers: short, because tasks come
	// and go.
	DefaultTTL = 2 * time.Second
	// DefaultUpstreamTimeout bounds the wait for each upstream server.
	DefaultUpstreamTimeout = 2 * time.Second
	// DefaultMaxForwards bounds the queries being forwarded at once; more
	// are answered SERVFAIL.
	DefaultMaxForwards = 128
	// maxUpstreams is how many upstream servers one query tries.
	maxUpstreams = 3
)

// Config configures a Resolver.
type Config struct {
	// NetNS is the task's network namespace, where the resolver listens.
	NetNS NetNS
	// Addr is where it listens, UDP and TCP (DefaultAddr when zero). The
	// namespace's loopback interface must be up. Port 0 picks a port.
	Addr netip.AddrPort
	// Records answers cluster names; nil forwards everything.
	Records Records
	// Upstreams are the servers other names are forwarded to, in order
	// (port 53 when the port is 0), dialled from the calling process's
	// network namespace. Usually ResolvConf.Upstreams of the host.
	Upstreams []netip.AddrPort
	// SearchDomains are stripped from query names before cluster names
	// are looked up (the host's search domains, which the task's
	// resolv.conf also lists).
	SearchDomains []string
	// TTL of cluster answers, in whole seconds (DefaultTTL when zero).
	TTL time.Duration
	// UpstreamTimeout bounds each upstream attempt (DefaultUpstreamTimeout
	// when zero).
	UpstreamTimeout time.Duration
	// MaxForwards bounds concurrent forwarded queries (DefaultMaxForwards
	// when zero).
	MaxForwards int
	Logger      *slog.Logger
}

// Resolver is one task's DNS server. It is safe for concurrent use.
type Resolver struct {
	cfg       Config
	log       *slog.Logger
	ttl       uint32
	search    []string
	records   atomic.Pointer[Records]
	upstreams atomic.Pointer[[]netip.AddrPort]
	forwards  chan struct{} // one token per forwarded query in flight

	ctx    context.Context // cancelled by Close: aborts forwarding
	cancel context.CancelFunc

	addr     netip.AddrPort
	udp, tcp *mdns.Server
	serving  sync.WaitGroup
	close    sync.Once
	closeErr error
}

// newResolver checks cfg and fills in defaults; it opens no socket.
func newResolver(cfg Config) (*Resolver, error) {
	for _, u := range cfg.Upstreams {
		if !u.Addr().IsValid() {
			return nil, fmt.Errorf("dns: invalid upstream server %q", u)
		}
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = DefaultAddr
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = DefaultMaxForwards
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{
		cfg:      cfg,
		log:      cfg.Logger,
		ttl:      uint32(max(cfg.TTL.Round(time.Second), time.Second) / time.Second),
		forwards: make(chan struct{}, cfg.MaxForwards),
	}
	for _, d := range cfg.SearchDomains {
		if d = normalize(strings.TrimPrefix(d, ".")); d != "" && !slices.Contains(r.search, d) {
			r.search = append(r.search, d)
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.SetRecords(cfg.Records)
	r.SetUpstreams(cfg.Upstreams)
	return r, nil
}

// Start opens the resolver's UDP and TCP sockets in cfg.NetNS and serves
// them until Close.
func Start(cfg Config) (*Resolver, error) {
	r, err := newResolver(cfg)
	if err != nil {
		return nil, err
	}
	var (
		pc net.PacketConn
		ln net.Listener
	)
	err = cfg.NetNS.do(func() error {
		var lc net.ListenConfig
		var err error
		pc, err = lc.ListenPacket(context.Background(), "udp", r.cfg.Addr.String())
		if err != nil {
			return err
		}
		// With port 0, TCP takes the port UDP got.
		tcpAddr := netip.AddrPortFrom(r.cfg.Addr.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err = lc.Listen(context.Background(), "tcp", tcpAddr.String())
		return err
	})
	if err != nil {
		closeAll(pc, ln)
		r.cancel()
		return nil, fmt.Errorf("dns: listen on %s in %s: %w", cfg.Addr, cfg.NetNS, err)
	}
	r.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	handler := mdns.HandlerFunc(r.serveDNS)
	r.udp = &mdns.Server{PacketConn: pc, Handler: handler}
	r.tcp = &mdns.Server{Listener: ln, Handler: handler}
	for _, srv := range []*mdns.Server{r.udp, r.tcp} {
		if err := r.serve(srv); err != nil {
			closeAll(pc, ln)
			_ = r.Close()
			return nil, fmt.Errorf("dns: serve on %s: %w", r.addr, err)
		}
	}
	r.log.Debug("dns resolver started", "addr", r.addr, "netns", cfg.NetNS.String())
	return r, nil
}

// serve runs srv on a goroutine and returns once it is serving.
func (r *Resolver) serve(srv *mdns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	r.serving.Add(1)
	go func() {
		defer r.serving.Done()
		if err := srv.ActivateAndServe(); err != nil {
			failed <- err
		}
	}()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return err
	}
}

func closeAll(pc net.PacketConn, ln net.Listener) {
	if pc != nil {
		_ = pc.Close()
	}
	if ln != nil {
		_ = ln.Close()
	}
}

// Addr returns the address the resolver serves (UDP and TCP).
func (r *Resolver) Addr() netip.AddrPort { return r.addr }

// SetRecords replaces the cluster names; nil forwards everything.
func (r *Resolver) SetRecords(rs Records) { r.records.Store(&rs) }

// SetUpstreams replaces the upstream servers (port 53 when the port is 0;
// invalid addresses are skipped).
func (r *Resolver) SetUpstreams(ups []netip.AddrPort) {
	var list []netip.AddrPort
	for _, u := range ups {
		if !u.Addr().IsValid() {
			continue
		}
		if u.Port() == 0 {
			u = netip.AddrPortFrom(u.Addr(), 53)
		}
		list = append(list, u)
	}
	r.upstreams.Store(&list)
}

// Close stops serving, aborts forwarded queries and closes the sockets,
// so the address can be bound again.
func (r *Resolver) Close() error {
	r.close.Do(func() {
		r.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range []*mdns.Server{r.udp, r.tcp} {
			if srv == nil {
				continue
			}
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		r.serving.Wait()
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("dns: close %s: %w", r.addr, err)
		}
	})
	return r.closeErr
}
