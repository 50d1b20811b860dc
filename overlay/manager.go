package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/shoal-project/shoal/overlay/internal/nsutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Manager owns a node's overlay data plane. All its methods are safe for
// concurrent use; they are serialised.
type Manager struct {
	mu     sync.Mutex
	cfg    Config
	log    *slog.Logger
	closed bool

	nodeNS netns.NsHandle
	node   *netlink.Handle // in nodeNS
	ulMTU  int             // underlay MTU
	ovMTU  int             // overlay MTU
	nsDir  string

	sandboxes map[uint32]*sandbox  // by VNI, including ones found on disk and not yet claimed
	networks  map[string]*Network  // by network ID (EnsureNetwork'd)
	peers     map[string]*peerDB   // by network ID; may precede EnsureNetwork
	services  map[string][]Service // by network ID; present once SetServices was called
	tasks     map[string]*task     // by task ID

	egressAddrs map[string]netip.Prefix // task ID -> egress address

	ingress       *ingressState
	published     []PublishedPort // nil until SetPublishedPorts
	publishedSet  bool
	meshFlows     map[portKey]map[netip.Addr]bool // programmed DNAT targets per published port
	reserved      map[portKey]*reservation
	clusterPeers  []netip.Addr
	clusterPeerOK bool
}

type ingressState struct {
	network string
	addr    netip.Prefix
}

// New opens the node's namespace, sets up the node-level plumbing (the state
// directory, the egress bridge and its nftables table, IPv4 forwarding) and
// finds the sandboxes a previous Manager left in StateDir, with their peers.
// Found sandboxes keep working untouched until Reconcile or EnsureNetwork
// claims them or Reconcile removes them. Kernel state a previous Manager
// left in the node's namespace (tables, the ingress endpoint, task
// interfaces) is kept as it is.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("overlay: Config.StateDir is required")
	}
	if !cfg.DataPathAddr.Is4() {
		return nil, fmt.Errorf("overlay: data-path address %v is not an IPv4 address", cfg.DataPathAddr)
	}
	if cfg.DataPathPort == 0 {
		cfg.DataPathPort = DefaultDataPathPort
	}
	if cfg.EgressBridge == "" {
		cfg.EgressBridge = "shoal_gwbridge"
	}
	if cfg.IngressLink == "" {
		cfg.IngressLink = "shoal_ing0"
	}
	for _, n := range []string{cfg.EgressBridge, cfg.IngressLink} {
		if len(n) > 15 {
			return nil, fmt.Errorf("overlay: interface name %q is longer than 15 characters", n)
		}
	}
	if cfg.EgressSubnet.IsValid() {
		if !cfg.EgressSubnet.Addr().Is4() || cfg.EgressSubnet.Bits() > 30 {
			return nil, fmt.Errorf("overlay: egress subnet %s must be IPv4 with room for tasks", cfg.EgressSubnet)
		}
		cfg.EgressSubnet = cfg.EgressSubnet.Masked()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{
		cfg:         cfg,
		log:         log.With("component", "overlay"),
		sandboxes:   map[uint32]*sandbox{},
		networks:    map[string]*Network{},
		peers:       map[string]*peerDB{},
		services:    map[string][]Service{},
		tasks:       map[string]*task{},
		egressAddrs: map[string]netip.Prefix{},
		meshFlows:   map[portKey]map[netip.Addr]bool{},
		reserved:    map[portKey]*reservation{},
		nsDir:       filepath.Join(cfg.StateDir, "netns"),
	}
	if err := m.open(ctx); err != nil {
		m.closeLocked()
		return nil, err
	}
	return m, nil
}

func (m *Manager) open(ctx context.Context) error {
	var err error
	if m.cfg.NetNSPath == "" {
		m.nodeNS, err = nsutil.Current()
	} else {
		m.nodeNS, err = nsutil.Open(m.cfg.NetNSPath)
	}
	if err != nil {
		return fmt.Errorf("overlay: node namespace: %w", err)
	}
	if m.node, err = nsutil.NewHandle(m.nodeNS); err != nil {
		return fmt.Errorf("overlay: node namespace: %w", err)
	}
	if err := m.detectMTU(); err != nil {
		return err
	}
	if err := os.MkdirAll(m.nsDir, 0o755); err != nil {
		return fmt.Errorf("overlay: state directory: %w", err)
	}
	if err := nsutil.EnsureSharedMount(m.nsDir); err != nil {
		return fmt.Errorf("overlay: state directory: %w", err)
	}
	if err := nsutil.Sysctl(m.nodeNS, "net.ipv4.ip_forward", "1"); err != nil {
		return fmt.Errorf("overlay: node namespace: %w", err)
	}
	if err := m.discoverSandboxes(ctx); err != nil {
		return err
	}
	if m.cfg.EgressSubnet.IsValid() {
		if err := m.ensureEgressBridge(); err != nil {
			return err
		}
		if err := m.discoverEgress(); err != nil {
			return err
		}
	}
	return nil
}

// detectMTU finds the underlay MTU and checks the data-path address is local.
func (m *Manager) detectMTU() error {
	addrs, err := m.node.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("overlay: list addresses of the node's namespace: %w", err)
	}
	var link netlink.Link
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == m.cfg.DataPathAddr {
			link, err = m.node.LinkByIndex(a.LinkIndex)
			if err != nil {
				return fmt.Errorf("overlay: link of data-path address %s: %w", m.cfg.DataPathAddr, err)
			}
			break
		}
	}
	if link == nil {
		return fmt.Errorf("overlay: data-path address %s is not configured in the node's namespace", m.cfg.DataPathAddr)
	}
	m.ulMTU = m.cfg.MTU
	if m.ulMTU == 0 {
		m.ulMTU = link.Attrs().MTU
	}
	if m.ulMTU < 576+vxlanOverhead {
		return fmt.Errorf("overlay: underlay MTU %d (link %s) is too small", m.ulMTU, link.Attrs().Name)
	}
	m.ovMTU = m.ulMTU - vxlanOverhead
	return nil
}

// OverlayMTU is the MTU of every overlay interface (the underlay MTU - 50).
func (m *Manager) OverlayMTU() int { return m.ovMTU }

// SandboxPath is the bind mount of the sandbox namespace of the network
// with the given VNI (whether or not it exists).
func (m *Manager) SandboxPath(vni uint32) string {
	return filepath.Join(m.nsDir, fmt.Sprintf("ov-%d", vni))
}

// Reconcile makes the node match d after a restart: sandboxes of networks
// not in d.Networks are removed, those in it are ensured (EnsureNetwork),
// and task interfaces of tasks not in d.Tasks are removed from every
// sandbox and from the egress bridge. Tasks in d.Tasks keep their interfaces
// and traffic; call AttachTask for each to re-adopt them (that also
// reprograms their service tables once SetServices has been called for
// their networks).
func (m *Manager) Reconcile(ctx context.Context, d Desired) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	want := map[uint32]bool{}
	for _, n := range d.Networks {
		want[n.VNI] = true
	}
	var errs []error
	for _, vni := range sortedVNIs(m.sandboxes) {
		if !want[vni] {
			errs = append(errs, m.removeSandboxLocked(m.sandboxes[vni]))
		}
	}
	for _, n := range d.Networks {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, m.ensureNetworkLocked(n))
	}
	keep := map[string]bool{}
	for _, id := range d.Tasks {
		keep[id] = true
	}
	for id := range m.tasks {
		if !keep[id] {
			errs = append(errs, m.detachLocked(id))
		}
	}
	for _, vni := range sortedVNIs(m.sandboxes) {
		errs = append(errs, m.removeStaleTaskLinks(m.sandboxes[vni], keep))
	}
	errs = append(errs, m.removeStaleEgressLinks(keep))
	return errors.Join(errs...)
}

// Close releases the Manager's handles, file descriptors and port
// reservations and leaves all kernel state in place, so that a new Manager
// on the same StateDir takes over without interrupting traffic.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closeLocked()
	return nil
}

func (m *Manager) closeLocked() {
	m.closed = true
	for k, l := range m.reserved {
		l.Close()
		delete(m.reserved, k)
	}
	for _, t := range m.tasks {
		t.close()
	}
	for _, sb := range m.sandboxes {
		sb.close()
	}
	if m.node != nil {
		m.node.Close()
		m.node = nil
	}
	if m.nodeNS.IsOpen() {
		m.nodeNS.Close()
	}
}

// Teardown removes everything the Manager (or an earlier one on the same
// StateDir) made: task interfaces and service tables, sandboxes and their
// bind mounts, the ingress endpoint, the egress bridge, the node's nftables
// tables and the conntrack entries of NATed overlay flows. It is for a node
// leaving the cluster. The Manager is closed afterwards. It carries on past
// errors and returns them all.
func (m *Manager) Teardown(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var errs []error
	nets := m.overlayNodePrefixes()
	for k, l := range m.reserved {
		l.Close()
		delete(m.reserved, k)
	}
	for _, id := range sortedKeys(m.tasks) {
		errs = append(errs, m.detachLocked(id))
	}
	errs = append(errs, m.removeStaleEgressLinks(nil))
	for _, vni := range sortedVNIs(m.sandboxes) {
		errs = append(errs, m.removeStaleTaskLinks(m.sandboxes[vni], nil))
	}
	errs = append(errs, m.deleteNodeTables())
	errs = append(errs, m.flushNodeConntrack(nets))
	errs = append(errs, m.deleteIngressLink())
	errs = append(errs, m.removeEgress())
	for _, vni := range sortedVNIs(m.sandboxes) {
		errs = append(errs, m.removeSandboxLocked(m.sandboxes[vni]))
	}
	errs = append(errs, m.removeLeftoverNetNS())
	if err := nsutil.UnmountDir(m.nsDir); err != nil {
		errs = append(errs, fmt.Errorf("overlay: %w", err))
	} else if err := os.Remove(m.nsDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("overlay: remove %s: %w", m.nsDir, err))
	}
	m.closeLocked()
	return errors.Join(errs...)
}

// removeLeftoverNetNS removes namespace files in the state directory that
// are not sandboxes this Manager tracks (half-created ones).
func (m *Manager) removeLeftoverNetNS() error {
	ents, err := os.ReadDir(m.nsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("overlay: %w", err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, nsutil.Remove(filepath.Join(m.nsDir, e.Name())))
	}
	return errors.Join(errs...)
}

func sortedVNIs(m map[uint32]*sandbox) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
