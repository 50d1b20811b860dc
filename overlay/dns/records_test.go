package dns

import (
	"net/netip"
	"slices"
	"testing"
)

func lookup(t *testing.T, rs Records, name string) ([]netip.Addr, bool) {
	t.Helper()
	addrs, ok := rs.LookupName(name)
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return out, ok
}

func TestTableReplacesAndDeletesEveryName(t *testing.T) {
	tb := clusterTable()
	// w0 moves to another service with other names.
	moved := Endpoint{ID: "w0", IP: netip.MustParseAddr("198.19.1.31"), TaskName: "api.1.zzz", ServiceName: "api", Aliases: []string{"gateway"}}
	tb.Set(moved)
	if got, _ := lookup(t, tb, "tasks.web"); !slices.Equal(got, webIPs[1:]) {
		t.Errorf("tasks.web = %v, want the two tasks left", got)
	}
	if _, ok := tb.LookupName("web.1.abc0"); ok {
		t.Error("the old task name still resolves")
	}
	if names, ok := tb.LookupAddr(webIPs[0]); ok {
		t.Errorf("the old task IP still has names %v", names)
	}
	for _, n := range []string{"api", "gateway", "tasks.gateway", "api.1.zzz"} {
		if got, ok := lookup(t, tb, n); !ok || !slices.Equal(got, []netip.Addr{moved.IP}) {
			t.Errorf("%s = %v, %v; want %s (api has no VIP)", n, got, ok, moved.IP)
		}
	}

	for _, id := range []string{"w0", "w1", "w2", "r0", "r1", "missing"} {
		tb.Delete(id)
	}
	if tb.Len() != 0 {
		t.Fatalf("%d endpoints left", tb.Len())
	}
	for _, n := range []string{"web", "www", "tasks.web", "rr", "api", "gateway", "web.2.abc1"} {
		if addrs, ok := tb.LookupName(n); ok {
			t.Errorf("%s still known (%v) in an empty table", n, addrs)
		}
	}
	if len(tb.services) != 0 || len(tb.tasks) != 0 || len(tb.ips) != 0 || len(tb.vips) != 0 {
		t.Errorf("indexes not empty: %v %v %v %v", tb.services, tb.tasks, tb.ips, tb.vips)
	}
}

func TestServiceNamesWinOverTaskNamesAndTasksPrefix(t *testing.T) {
	tb := NewTable()
	// A task whose name is another service's name, and a service called
	// "tasks.x"-like names must not confuse the lookup.
	tb.Set(Endpoint{ID: "a", IP: netip.MustParseAddr("198.19.3.1"), TaskName: "db", ServiceName: "front", VIP: netip.MustParseAddr("198.19.3.100")})
	tb.Set(Endpoint{ID: "b", IP: netip.MustParseAddr("198.19.3.2"), TaskName: "db.1.x", ServiceName: "db", VIP: netip.MustParseAddr("198.19.3.200")})
	if got, _ := lookup(t, tb, "db"); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.19.3.200")}) {
		t.Errorf("db = %v, want the service's VIP", got)
	}
	if got, ok := lookup(t, tb, "tasks.nosuch"); ok {
		t.Errorf("tasks.nosuch = %v, want unknown", got)
	}
	if got, _ := lookup(t, tb, "tasks.front"); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.19.3.1")}) {
		t.Errorf("tasks.front = %v", got)
	}
}

func TestUnionJoinsNetworks(t *testing.T) {
	a, b := NewTable(), NewTable()
	a.Set(Endpoint{ID: "1", IP: netip.MustParseAddr("198.19.4.1"), TaskName: "web.1.x", ServiceName: "web"})
	b.Set(Endpoint{ID: "2", IP: netip.MustParseAddr("198.19.5.1"), TaskName: "web.1.x", ServiceName: "web"})
	b.Set(Endpoint{ID: "3", IP: netip.MustParseAddr("198.19.5.2"), TaskName: "db.1.y", ServiceName: "db"})
	u := Union(a, b)
	if got, ok := lookup(t, u, "web.1.x"); !ok || len(got) != 2 {
		t.Errorf("web.1.x over both networks = %v, %v; want both addresses", got, ok)
	}
	if got, ok := lookup(t, u, "db"); !ok || len(got) != 1 {
		t.Errorf("db = %v, %v", got, ok)
	}
	if _, ok := u.LookupName("nothing"); ok {
		t.Error("unknown name known to the union")
	}
	if names, ok := u.LookupAddr(netip.MustParseAddr("198.19.5.2")); !ok || !slices.Equal(names, []string{"db.1.y"}) {
		t.Errorf("PTR over the union = %v, %v", names, ok)
	}
}
