package dns

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// serveDNS answers one query: from the cluster's names when it is one,
// else from the upstream servers.
func (r *Resolver) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	resp := r.answer(req, proto)
	if err := w.WriteMsg(resp); err != nil {
		r.log.Debug("dns: write answer", "err", err)
	}
}

func (r *Resolver) answer(req *mdns.Msg, proto string) *mdns.Msg {
	if req.Opcode != mdns.OpcodeQuery {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return new(mdns.Msg).SetRcodeFormatError(req)
	}
	if resp := r.local(req); resp != nil {
		fit(req, resp, proto)
		return resp
	}
	return r.forward(req, proto)
}

// local answers a cluster name, or returns nil for any other name.
func (r *Resolver) local(req *mdns.Msg) *mdns.Msg {
	q := req.Question[0]
	recs := *r.records.Load()
	if recs == nil || q.Qclass != mdns.ClassINET {
		return nil
	}
	name := normalize(q.Name)
	if q.Qtype == mdns.TypePTR {
		addr, ok := parseReverse(name)
		if !ok {
			return nil
		}
		names, ok := recs.LookupAddr(addr)
		if !ok {
			return nil
		}
		resp := r.reply(req)
		for _, n := range names {
			resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: r.header(q.Name, mdns.TypePTR), Ptr: mdns.Fqdn(n)})
		}
		return resp
	}
	for _, cand := range r.candidates(name) {
		addrs, ok := recs.LookupName(cand)
		if !ok {
			continue
		}
		resp := r.reply(req)
		if q.Qtype != mdns.TypeA {
			return resp // the name exists, but only with A records
		}
		addrs = shuffled(addrs)
		for _, a := range addrs {
			if a.Is4() {
				resp.Answer = append(resp.Answer, &mdns.A{Hdr: r.header(q.Name, mdns.TypeA), A: a.AsSlice()})
			}
		}
		return resp
	}
	return nil
}

// candidates lists name and name without each matching search domain.
func (r *Resolver) candidates(name string) []string {
	out := []string{name}
	for _, d := range r.search {
		if short, ok := strings.CutSuffix(name, "."+d); ok && short != "" {
			out = append(out, short)
		}
	}
	return out
}

func (r *Resolver) reply(req *mdns.Msg) *mdns.Msg {
	resp := new(mdns.Msg).SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	return resp
}

func (r *Resolver) header(name string, typ uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: typ, Class: mdns.ClassINET, Ttl: r.ttl}
}

// fit sizes a local answer for the client: EDNS0 if it asked for it, and
// truncated (TC set) to what a UDP client can take.
func fit(req, resp *mdns.Msg, proto string) {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		resp.SetEdns0(uint16(size), false)
	}
	if proto == "tcp" {
		size = mdns.MaxMsgSize
	}
	resp.Truncate(size)
}

// forward asks the upstream servers in turn and returns the first real
// answer; SERVFAIL when none gives one.
func (r *Resolver) forward(req *mdns.Msg, proto string) *mdns.Msg {
	ups := *r.upstreams.Load()
	if len(ups) == 0 {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	select {
	case r.forwards <- struct{}{}:
		defer func() { <-r.forwards }()
	default:
		r.log.Warn("dns: too many queries being forwarded; answering SERVFAIL", "limit", r.cfg.MaxForwards)
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	var last *mdns.Msg
	for _, up := range ups[:min(len(ups), maxUpstreams)] {
		c := &mdns.Client{Net: proto, Timeout: r.cfg.UpstreamTimeout}
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.UpstreamTimeout)
		resp, _, err := c.ExchangeContext(ctx, req, up.String())
		cancel()
		if err != nil {
			r.log.Debug("dns: upstream failed", "upstream", up, "name", req.Question[0].Name, "err", err)
			continue
		}
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			last = resp
			continue
		}
		return resp
	}
	if last != nil {
		return last
	}
	return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
}

// parseReverse reads an IPv4 address from its in-addr.arpa name.
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || len(p) > 1 && p[0] == '0' {
			return netip.Addr{}, false
		}
		b[3-i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

func shuffled(addrs []netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), addrs...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
