package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Records holds the names local to one task. The resolver asks it on every
// query, so a change shows in the next answer. Implementations must be
// safe for concurrent use.
type Records interface {
	// LookupName returns the addresses of name, which is in lower case
	// with no trailing dot and no search domain. ok reports whether the
	// name is a cluster name at all: a known name is answered locally
	// even with no addresses, an unknown one is forwarded.
	LookupName(name string) (addrs []netip.Addr, ok bool)
	// LookupAddr returns the names of addr, without trailing dots, for
	// PTR queries.
	LookupAddr(addr netip.Addr) (names []string, ok bool)
}

// Endpoint is what a Table knows of one task on one network.
type Endpoint struct {
	// ID identifies the endpoint in the table (the endpoint or task ID).
	ID          string
	IP          netip.Addr
	TaskName    string
	ServiceName string
	// Aliases are the service's extra names on this network.
	Aliases []string
	// VIP is the service's virtual IP on this network; the zero Addr for
	// a service without one (DNS round robin).
	VIP netip.Addr
}

// TasksPrefix starts the name of the set of a service's tasks.
const TasksPrefix = "tasks."

// Table is the Records of one network: its services and tasks. It is safe
// for concurrent use.
type Table struct {
	mu        sync.RWMutex
	endpoints map[string]Endpoint
	services  map[string]map[string]bool // service name or alias -> endpoint IDs
	tasks     map[string]map[string]bool // task name -> endpoint IDs
	ips       map[netip.Addr]map[string]bool
	vips      map[netip.Addr]map[string]bool
}

var _ Records = (*Table)(nil)

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		endpoints: map[string]Endpoint{},
		services:  map[string]map[string]bool{},
		tasks:     map[string]map[string]bool{},
		ips:       map[netip.Addr]map[string]bool{},
		vips:      map[netip.Addr]map[string]bool{},
	}
}

// Set adds an endpoint or replaces the one with the same ID.
func (t *Table) Set(e Endpoint) {
	e.Aliases = slices.Clone(e.Aliases)
	e.IP, e.VIP = e.IP.Unmap(), e.VIP.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(e.ID)
	t.endpoints[e.ID] = e
	for _, n := range serviceNames(e) {
		addKey(t.services, n, e.ID)
	}
	if e.TaskName != "" {
		addKey(t.tasks, normalize(e.TaskName), e.ID)
	}
	if e.IP.IsValid() {
		addKey(t.ips, e.IP, e.ID)
	}
	if e.VIP.IsValid() {
		addKey(t.vips, e.VIP, e.ID)
	}
}

// Delete removes the endpoint with the given ID, if any.
func (t *Table) Delete(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(id)
}

// Len returns the number of endpoints in the table.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.endpoints)
}

func (t *Table) removeLocked(id string) {
	e, ok := t.endpoints[id]
	if !ok {
		return
	}
	delete(t.endpoints, id)
	for _, n := range serviceNames(e) {
		removeKey(t.services, n, id)
	}
	removeKey(t.tasks, normalize(e.TaskName), id)
	removeKey(t.ips, e.IP, id)
	removeKey(t.vips, e.VIP, id)
}

// LookupName implements Records.
func (t *Table) LookupName(name string) ([]netip.Addr, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	name = normalize(name)
	if svc, ok := strings.CutPrefix(name, TasksPrefix); ok {
		if ids := t.services[svc]; len(ids) > 0 {
			return t.ipsOf(ids), true
		}
	}
	if ids := t.services[name]; len(ids) > 0 {
		var vips []netip.Addr
		for id := range ids {
			if v := t.endpoints[id].VIP; v.IsValid() && !slices.Contains(vips, v) {
				vips = append(vips, v)
			}
		}
		if len(vips) > 0 {
			slices.SortFunc(vips, netip.Addr.Compare)
			return vips, true
		}
		return t.ipsOf(ids), true
	}
	if ids := t.tasks[name]; len(ids) > 0 {
		return t.ipsOf(ids), true
	}
	return nil, false
}

// LookupAddr implements Records: a task IP gives its task name, a VIP its
// service name.
func (t *Table) LookupAddr(addr netip.Addr) ([]string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	addr = addr.Unmap()
	var names []string
	for id := range t.ips[addr] {
		if n := t.endpoints[id].TaskName; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for id := range t.vips[addr] {
		if n := t.endpoints[id].ServiceName; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, len(names) > 0
}

func (t *Table) ipsOf(ids map[string]bool) []netip.Addr {
	var out []netip.Addr
	for id := range ids {
		if ip := t.endpoints[id].IP; ip.IsValid() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// serviceNames returns the normalized service name and aliases of e.
func serviceNames(e Endpoint) []string {
	var out []string
	for _, n := range append([]string{e.ServiceName}, e.Aliases...) {
		if n = normalize(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// normalize puts a name in the form Records are asked in.
func normalize(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func addKey[K comparable](m map[K]map[string]bool, k K, id string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][id] = true
}

func removeKey[K comparable](m map[K]map[string]bool, k K, id string) {
	if set := m[k]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Union combines the Records of the networks a task is attached to: a name
// known on any of them is known, with the addresses from all of them.
func Union(rs ...Records) Records { return union(slices.Clone(rs)) }

type union []Records

func (u union) LookupName(name string) ([]netip.Addr, bool) {
	var out []netip.Addr
	known := false
	for _, r := range u {
		addrs, ok := r.LookupName(name)
		known = known || ok
		for _, a := range addrs {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out, known
}

func (u union) LookupAddr(addr netip.Addr) ([]string, bool) {
	var out []string
	for _, r := range u {
		names, _ := r.LookupAddr(addr)
		for _, n := range names {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out, len(out) > 0
}
