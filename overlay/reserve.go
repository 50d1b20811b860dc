package overlay

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netns"
)

// A published port is reserved, as Swarm does, by a socket bound to it in
// the node's namespace, so no other local process can bind it and be
// silently shadowed by the DNAT rules. Packets from elsewhere to the node's
// addresses are DNATed before they reach the socket. What does reach it is
// traffic the rules leave alone: TCP connections to loopback addresses,
// and (host mode) from the node's own tasks, whose packets cross the
// egress bridge, where DNAT back onto the same bridge would bypass the
// masquerade. The TCP socket proxies those connections to one of the
// port's targets, as Docker's userland proxy does; the UDP socket only
// holds the port.

type reservation struct {
	proto Protocol
	ns    netns.NsHandle // a duplicate of the node's, owned here
	c     io.Closer

	targets atomic.Pointer[[]netip.AddrPort]

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (r *reservation) setTargets(ts []netip.AddrPort) {
	r.targets.Store(&ts)
}

// Close stops the socket and every connection it is proxying.
func (r *reservation) Close() error {
	r.mu.Lock()
	r.closed = true
	err := r.c.Close()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.ns.Close()
	return err
}

func (r *reservation) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *reservation) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// reservePort opens the reservation socket for k in ns.
func reservePort(ns netns.NsHandle, k portKey) (*reservation, error) {
	dup, err := nsutil.Dup(ns)
	if err != nil {
		return nil, err
	}
	r := &reservation{proto: k.proto, ns: dup, conns: map[net.Conn]struct{}{}}
	r.setTargets(nil)
	addr := fmt.Sprintf("0.0.0.0:%d", k.port)
	switch k.proto {
	case TCP:
		var ln net.Listener
		if err := nsutil.Do(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
			dup.Close()
			return nil, err
		}
		r.c = ln
		r.wg.Add(1)
		go r.acceptLoop(ln)
	case UDP:
		var pc net.PacketConn
		if err := nsutil.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
			dup.Close()
			return nil, err
		}
		r.c = pc
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil && errors.Is(err, net.ErrClosed) {
					return
				}
			}
		}()
	default:
		dup.Close()
		return nil, fmt.Errorf("unsupported protocol %s", k.proto)
	}
	return r, nil
}

func (r *reservation) acceptLoop(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off instead of
			// spinning, and keep the reservation.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !r.track(c) {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.proxy(c)
		}()
	}
}

const proxyDialTimeout = 5 * time.Second

// proxy connects c to one of the targets, picked at random, and copies
// both ways until both sides are done.
func (r *reservation) proxy(c net.Conn) {
	ts := *r.targets.Load()
	if len(ts) == 0 {
		return
	}
	to := ts[rand.IntN(len(ts))]
	var up net.Conn
	if err := nsutil.Do(r.ns, func() (err error) {
		up, err = net.DialTimeout("tcp4", to.String(), proxyDialTimeout)
		return err
	}); err != nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(c, up)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}
