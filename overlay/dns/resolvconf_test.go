package dns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseResolvConf(t *testing.T) {
	rc := ParseResolvConf([]byte(`# host resolv.conf
nameserver 198.18.0.53
nameserver fe80::1%eth0 ; link-local
nameserver not-an-address
domain old.example
search corp.example lab.example
options edns0 timeout:2
options rotate
garbage
`))
	wantNS := []netip.Addr{netip.MustParseAddr("198.18.0.53"), netip.MustParseAddr("fe80::1%eth0")}
	if !slices.Equal(rc.Nameservers, wantNS) {
		t.Errorf("nameservers %v, want %v", rc.Nameservers, wantNS)
	}
	if !slices.Equal(rc.Search, []string{"corp.example", "lab.example"}) {
		t.Errorf("search %v: the last search line wins", rc.Search)
	}
	if !slices.Equal(rc.Options, []string{"edns0", "timeout:2", "rotate"}) {
		t.Errorf("options %v", rc.Options)
	}
	ups := rc.Upstreams()
	if len(ups) != 2 || ups[0] != netip.MustParseAddrPort("198.18.0.53:53") || ups[1].Port() != 53 {
		t.Errorf("upstreams %v", ups)
	}
}

func TestTaskResolvConf(t *testing.T) {
	got := string(TaskResolvConf([]string{"corp.example", " lab.example ", "", "bad domain"}))
	rc := ParseResolvConf([]byte(got))
	if !slices.Equal(rc.Nameservers, []netip.Addr{netip.MustParseAddr("127.0.0.11")}) {
		t.Errorf("nameservers %v in\n%s", rc.Nameservers, got)
	}
	if !slices.Equal(rc.Search, []string{"corp.example", "lab.example"}) {
		t.Errorf("search %v in\n%s", rc.Search, got)
	}
	if !slices.Equal(rc.Options, []string{"ndots:0"}) {
		t.Errorf("options %v in\n%s", rc.Options, got)
	}
	if none := string(TaskResolvConf(nil)); strings.Contains(none, "search") {
		t.Errorf("a search line with no domains:\n%s", none)
	}
}
