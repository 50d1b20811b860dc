package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// These tests ask the resolver's query logic directly; they open no
// socket in another namespace and need no privileges.

var (
	webVIP  = netip.MustParseAddr("198.19.1.250")
	webIPs  = []netip.Addr{netip.MustParseAddr("198.19.1.11"), netip.MustParseAddr("198.19.1.12"), netip.MustParseAddr("198.19.1.13")}
	rrIPs   = []netip.Addr{netip.MustParseAddr("198.19.1.21"), netip.MustParseAddr("198.19.1.22")}
	outside = netip.MustParseAddr("198.18.99.7")
)

// clusterTable holds service web (VIP, alias www, three tasks) and service
// rr (DNS round robin, two tasks).
func clusterTable() *Table {
	tb := NewTable()
	for i, ip := range webIPs {
		tb.Set(Endpoint{ID: fmt.Sprintf("w%d", i), IP: ip, TaskName: fmt.Sprintf("web.%d.abc%d", i+1, i), ServiceName: "web", Aliases: []string{"WWW"}, VIP: webVIP})
	}
	for i, ip := range rrIPs {
		tb.Set(Endpoint{ID: fmt.Sprintf("r%d", i), IP: ip, TaskName: fmt.Sprintf("rr.%d.def%d", i+1, i), ServiceName: "rr"})
	}
	return tb
}

func testResolver(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	r, err := newResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cancel() })
	return r
}

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	return m
}

// aRecords returns the addresses of resp's A answers, sorted, and fails if
// any answer has another TTL than ttl.
func aRecords(t *testing.T, resp *mdns.Msg, ttl uint32) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, rr := range resp.Answer {
		a, ok := rr.(*mdns.A)
		if !ok {
			t.Fatalf("answer %v is not an A record", rr)
		}
		if a.Hdr.Ttl != ttl {
			t.Errorf("%s: TTL %d, want %d", a.Hdr.Name, a.Hdr.Ttl, ttl)
		}
		ip, _ := netip.AddrFromSlice(a.A.To4())
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func TestAnswersClusterNames(t *testing.T) {
	r := testResolver(t, Config{Records: clusterTable(), TTL: 3 * time.Second, SearchDomains: []string{"Corp.Example.", "lab.example"}})
	for _, tc := range []struct {
		name string
		want []netip.Addr
	}{
		{"web.", []netip.Addr{webVIP}},
		{"WEB.", []netip.Addr{webVIP}},
		{"web", []netip.Addr{webVIP}}, // a question without the trailing dot
		{"www.", []netip.Addr{webVIP}},
		{"web.corp.example.", []netip.Addr{webVIP}},
		{"web.LAB.example.", []netip.Addr{webVIP}},
		{"tasks.web.", webIPs},
		{"Tasks.WWW.", webIPs},
		{"tasks.web.corp.example.", webIPs},
		{"rr.", rrIPs},
		{"tasks.rr.", rrIPs},
		{"web.2.abc1.", webIPs[1:2]},
		{"rr.1.def0.lab.example.", rrIPs[:1]},
	} {
		resp := r.answer(query(tc.name, mdns.TypeA), "udp")
		if resp.Rcode != mdns.RcodeSuccess || !resp.Authoritative || !resp.Response {
			t.Errorf("%s: rcode %s, authoritative %v", tc.name, mdns.RcodeToString[resp.Rcode], resp.Authoritative)
			continue
		}
		if got := aRecords(t, resp, 3); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if len(resp.Answer) > 0 && resp.Answer[0].Header().Name != tc.name {
			t.Errorf("%s: answer named %q, want the question's name", tc.name, resp.Answer[0].Header().Name)
		}
	}

	// Other types for cluster names: an empty NOERROR answer.
	for _, qt := range []uint16{mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT} {
		resp := r.answer(query("tasks.web.", qt), "udp")
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Errorf("%s tasks.web: rcode %s, %d answers; want an empty NOERROR", mdns.TypeToString[qt], mdns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
	}

	// PTR: a task IP names its task, the VIP its service.
	for ip, want := range map[netip.Addr]string{webIPs[2]: "web.3.abc2.", webVIP: "web.", rrIPs[0]: "rr.1.def0."} {
		rev, _ := mdns.ReverseAddr(ip.String())
		resp := r.answer(query(rev, mdns.TypePTR), "udp")
		if len(resp.Answer) != 1 {
			t.Errorf("PTR %s: %v", ip, resp.Answer)
			continue
		}
		ptr := resp.Answer[0].(*mdns.PTR)
		if ptr.Ptr != want || ptr.Hdr.Ttl != 3 {
			t.Errorf("PTR %s = %s (TTL %d), want %s (TTL 3)", ip, ptr.Ptr, ptr.Hdr.Ttl, want)
		}
	}
}

func TestShufflesAddresses(t *testing.T) {
	r := testResolver(t, Config{Records: clusterTable()})
	firsts := map[netip.Addr]bool{}
	for range 60 {
		resp := r.answer(query("tasks.web.", mdns.TypeA), "udp")
		ip, _ := netip.AddrFromSlice(resp.Answer[0].(*mdns.A).A.To4())
		firsts[ip] = true
	}
	if len(firsts) < 2 {
		t.Fatalf("60 answers all started with %v: not shuffled", firsts)
	}
}

func TestRecordChangesShowInTheNextAnswer(t *testing.T) {
	tb := clusterTable()
	r := testResolver(t, Config{Records: tb})
	tb.Set(Endpoint{ID: "w9", IP: netip.MustParseAddr("198.19.1.19"), TaskName: "web.9.x", ServiceName: "web", VIP: webVIP})
	if got := aRecords(t, r.answer(query("tasks.web.", mdns.TypeA), "udp"), 2); len(got) != 4 {
		t.Fatalf("after a task was added, tasks.web = %v, want 4 addresses", got)
	}
	for _, id := range []string{"r0", "r1"} {
		tb.Delete(id)
	}
	// rr is no longer a cluster name: it is forwarded, and with no
	// upstream servers that fails.
	if resp := r.answer(query("rr.", mdns.TypeA), "udp"); resp.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rr after its tasks left: %s, want SERVFAIL (forwarded, no upstream)", mdns.RcodeToString[resp.Rcode])
	}
	other := NewTable()
	other.Set(Endpoint{ID: "x", IP: outside, TaskName: "db.1.x", ServiceName: "db"})
	r.SetRecords(Union(tb, other))
	if got := aRecords(t, r.answer(query("db.", mdns.TypeA), "udp"), 2); !slices.Equal(got, []netip.Addr{outside}) {
		t.Fatalf("after SetRecords, db = %v", got)
	}
	r.SetRecords(nil)
	if resp := r.answer(query("web.", mdns.TypeA), "udp"); resp.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("with no records, web answered %s, want it forwarded", mdns.RcodeToString[resp.Rcode])
	}
}

func TestForwardsOtherNames(t *testing.T) {
	up := startUpstream(t, "127.0.0.1", 0, nil, answerWith("example.test.", outside))
	r := testResolver(t, Config{Records: clusterTable(), Upstreams: []netip.AddrPort{up.addr}})
	for _, proto := range []string{"udp", "tcp"} {
		resp := r.answer(query("Example.Test.", mdns.TypeA), proto)
		if got := aRecords(t, resp, 300); !slices.Equal(got, []netip.Addr{outside}) || resp.Rcode != mdns.RcodeSuccess {
			t.Fatalf("%s: forwarded answer %v (%s), want %s", proto, got, mdns.RcodeToString[resp.Rcode], outside)
		}
		if resp := r.answer(query("nowhere.test.", mdns.TypeA), proto); resp.Rcode != mdns.RcodeNameError {
			t.Fatalf("%s: NXDOMAIN upstream came back as %s", proto, mdns.RcodeToString[resp.Rcode])
		}
	}
	// A PTR for an address that is not the cluster's is forwarded too.
	before := up.queries.Load()
	rev, _ := mdns.ReverseAddr(outside.String())
	r.answer(query(rev, mdns.TypePTR), "udp")
	if up.queries.Load() != before+1 {
		t.Fatal("the PTR for an outside address was not forwarded")
	}
}

func TestServfailWhenNoUpstreamAnswers(t *testing.T) {
	good := startUpstream(t, "127.0.0.1", 0, nil, answerWith("example.test.", outside))
	failing := startUpstream(t, "127.0.0.1", 0, nil, func(req *mdns.Msg) *mdns.Msg {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	})
	silent := startUpstream(t, "127.0.0.1", 0, nil, func(*mdns.Msg) *mdns.Msg { return nil })
	down := closedPort(t)
	const timeout = 300 * time.Millisecond

	for name, tc := range map[string]struct {
		ups   []netip.AddrPort
		rcode int
	}{
		"no upstream":         {nil, mdns.RcodeServerFailure},
		"upstream down":       {[]netip.AddrPort{down}, mdns.RcodeServerFailure},
		"upstream silent":     {[]netip.AddrPort{silent.addr}, mdns.RcodeServerFailure},
		"upstream fails":      {[]netip.AddrPort{failing.addr}, mdns.RcodeServerFailure},
		"down, then good":     {[]netip.AddrPort{down, good.addr}, mdns.RcodeSuccess},
		"silent, then good":   {[]netip.AddrPort{silent.addr, good.addr}, mdns.RcodeSuccess},
		"failing, then good":  {[]netip.AddrPort{failing.addr, good.addr}, mdns.RcodeSuccess},
		"only three are used": {[]netip.AddrPort{down, down, down, good.addr}, mdns.RcodeServerFailure},
	} {
		r := testResolver(t, Config{Upstreams: tc.ups, UpstreamTimeout: timeout})
		start := time.Now()
		resp := r.answer(query("example.test.", mdns.TypeA), "udp")
		took := time.Since(start)
		if resp.Rcode != tc.rcode {
			t.Errorf("%s: %s, want %s", name, mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
		}
		if limit := time.Duration(len(tc.ups))*timeout + time.Second; took > limit {
			t.Errorf("%s: took %s, want at most %s", name, took, limit)
		}
	}
}

func TestForwardingIsBounded(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := startUpstream(t, "127.0.0.1", 0, nil, func(req *mdns.Msg) *mdns.Msg {
		arrived <- struct{}{}
		<-release
		return answerWith("example.test.", outside)(req)
	})
	r := testResolver(t, Config{Upstreams: []netip.AddrPort{slow.addr}, MaxForwards: 1, UpstreamTimeout: 5 * time.Second})
	first := make(chan *mdns.Msg, 1)
	go func() { first <- r.answer(query("example.test.", mdns.TypeA), "udp") }()
	<-arrived // the first query is now being forwarded
	if resp := r.answer(query("example.test.", mdns.TypeA), "udp"); resp.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("second query while the only slot is busy: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	close(release)
	if resp := <-first; resp.Rcode != mdns.RcodeSuccess {
		t.Fatalf("first query: %s", mdns.RcodeToString[resp.Rcode])
	}
}

func TestLongAnswersAreTruncatedForUDP(t *testing.T) {
	tb := NewTable()
	for i := range 100 {
		tb.Set(Endpoint{ID: fmt.Sprint(i), IP: netip.AddrFrom4([4]byte{198, 19, 2, byte(i)}), ServiceName: "big"})
	}
	r := testResolver(t, Config{Records: tb})

	resp := r.answer(query("tasks.big.", mdns.TypeA), "udp")
	if !resp.Truncated || resp.Len() > mdns.MinMsgSize {
		t.Fatalf("plain UDP: truncated %v, %d bytes; want TC set within %d bytes", resp.Truncated, resp.Len(), mdns.MinMsgSize)
	}
	edns := query("tasks.big.", mdns.TypeA)
	edns.SetEdns0(4096, false)
	if resp := r.answer(edns, "udp"); resp.Truncated || len(resp.Answer) != 100 || resp.IsEdns0() == nil {
		t.Fatalf("EDNS0 UDP: truncated %v, %d answers, OPT %v; want all 100 with an OPT", resp.Truncated, len(resp.Answer), resp.IsEdns0())
	}
	if resp := r.answer(query("tasks.big.", mdns.TypeA), "tcp"); resp.Truncated || len(resp.Answer) != 100 {
		t.Fatalf("TCP: truncated %v, %d answers; want all 100", resp.Truncated, len(resp.Answer))
	}
}

func TestRejectsMalformedQueries(t *testing.T) {
	r := testResolver(t, Config{Records: clusterTable()})
	two := query("web.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if resp := r.answer(two, "udp"); resp.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", mdns.RcodeToString[resp.Rcode])
	}
	upd := query("web.", mdns.TypeA)
	upd.Opcode = mdns.OpcodeUpdate
	if resp := r.answer(upd, "udp"); resp.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("an update: %s, want NOTIMP", mdns.RcodeToString[resp.Rcode])
	}
	if _, err := newResolver(Config{Upstreams: []netip.AddrPort{{}}}); err == nil {
		t.Error("an invalid upstream was accepted")
	}
}

func TestParseReverse(t *testing.T) {
	for name, want := range map[string]string{
		"13.1.19.198.in-addr.arpa":  "198.19.1.13",
		"0.0.0.0.in-addr.arpa":      "0.0.0.0",
		"1.19.198.in-addr.arpa":     "",
		"256.1.19.198.in-addr.arpa": "",
		"01.1.19.198.in-addr.arpa":  "",
		"x.1.19.198.in-addr.arpa":   "",
		"13.1.19.198.ip6.arpa":      "",
	} {
		got, ok := parseReverse(name)
		if ok != (want != "") || ok && got.String() != want {
			t.Errorf("parseReverse(%q) = %v, %v; want %q", name, got, ok, want)
		}
	}
}
