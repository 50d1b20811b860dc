package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Names of the nftables tables (family ip) this package owns. Nothing else
// may write into them; each is regenerated whole, in one transaction.
const (
	lbTableName     = "shoal-lb"     // in each task's namespace: service VIPs
	meshTableName   = "shoal-mesh"   // node: published ports (routing mesh, host mode)
	egressTableName = "shoal-egress" // node: egress masquerade and isolation
	vxlanTableName  = "shoal-vxlan"  // node: data-path port open to cluster members only
)

// Registers as nft itself uses them: reg 1 is the first 16-byte register
// (NFT_REG_1), and concatenations continue in the 4-byte registers after it.
const (
	reg1  = 1 // NFT_REG_1 (= NFT_REG32_00..03)
	reg2  = 2 // NFT_REG_2
	reg32 = 9 // NFT_REG32_01: the second word of reg 1
)

// tableBatch builds one table's replacement as a single netlink batch: the
// table is created if missing, deleted, and created again with its new
// contents, so the kernel switches from the old ruleset to the new one
// atomically.
type tableBatch struct {
	c      *nftables.Conn
	t      *nftables.Table
	nextID uint32
}

func newTableBatch(ns netns.NsHandle, name string) (*tableBatch, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: name}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	return &tableBatch{c: c, t: t}, nil
}

func (b *tableBatch) baseChain(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return b.c.AddChain(&nftables.Chain{Name: name, Table: b.t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
}

func (b *tableBatch) chain(name string) *nftables.Chain {
	return b.c.AddChain(&nftables.Chain{Name: name, Table: b.t})
}

func (b *tableBatch) rule(ch *nftables.Chain, exprs ...expr.Any) {
	b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: exprs})
}

// set adds s with its elements. IDs are assigned here, per batch, rather
// than by the library (whose counter is a shared global).
func (b *tableBatch) set(s *nftables.Set, elems []nftables.SetElement) error {
	b.nextID++
	s.ID = b.nextID
	s.Table = b.t
	if s.Anonymous {
		s.Name = "__set%d"
		if s.IsMap {
			s.Name = "__map%d"
		}
	}
	return b.c.AddSet(s, elems)
}

func (b *tableBatch) flush() error {
	if err := b.c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", b.t.Name, err)
	}
	return nil
}

// deleteTable removes the table if it exists.
func deleteTable(ns netns.NsHandle, name string) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables connection: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: name}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", name, err)
	}
	return nil
}

// listTables returns the names of the nftables tables in ns (any family).
func listTables(ns netns.NsHandle) ([]string, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTables()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out, nil
}

// Expression helpers. Each returns the expressions of one match.

func loadDaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func loadSaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func cmp(op expr.CmpOp, data []byte) expr.Any {
	return &expr.Cmp{Op: op, Register: reg1, Data: data}
}

// ifnameBytes is an interface name as the kernel compares it (16 bytes).
func ifnameBytes(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

func matchIfname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: reg1}, cmp(op, ifnameBytes(name))}
}

func matchL4Proto(p Protocol) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, cmp(expr.CmpOpEq, []byte{byte(p)})}
}

// matchSaddrIn matches ip saddr in prefix.
func matchSaddrIn(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	net4 := p.Masked().Addr().As4()
	return []expr.Any{
		loadSaddr(reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		cmp(expr.CmpOpEq, net4[:]),
	}
}

// matchCtBits matches ct <key> & bits != 0 (ct state, ct status).
func matchCtBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		cmp(expr.CmpOpNeq, make([]byte, 4)),
	}
}

const icmpPortUnreach = 3 // ICMP destination unreachable code "port unreachable"

const (
	ctStatusDNAT       = 1 << 5 // IPS_DST_NAT
	ctStateEstablished = 1 << 1 // NF_CT_STATE_BIT(IP_CT_ESTABLISHED)
	ctStateRelated     = 1 << 2 // NF_CT_STATE_BIT(IP_CT_RELATED)
)

// matchLocalDaddr matches fib daddr type local and ip daddr != 127.0.0.0/8.
func matchLocalDaddr() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		cmp(expr.CmpOpEq, binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		cmp(expr.CmpOpNeq, []byte{127}),
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

// reject answers with ICMP port unreachable, so that clients fail at once
// instead of timing out. It only works in filter chains: in a nat chain the
// ICMP error is lost.
func reject() expr.Any {
	return &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreach}
}

func gotoVerdict(chain string) *expr.Verdict {
	return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e ...expr.Any) []expr.Any { return e }

// dnatExprs DNATs to one of addrs (at least one; picked at random,
// uniformly) and, if port is not 0, to that port.
func (b *tableBatch) dnatExprs(addrs []netip.Addr, port uint16) ([]expr.Any, error) {
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1}
	var portExprs []expr.Any
	if port != 0 {
		portExprs = one(&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(port)})
		nat.RegProtoMin = reg2
		nat.Specified = true
	}
	switch len(addrs) {
	case 0:
		return nil, errors.New("DNAT to no address")
	case 1:
		a := addrs[0].As4()
		return cat(one(&expr.Immediate{Register: reg1, Data: a[:]}), portExprs, one(nat)), nil
	}
	m := &nftables.Set{Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr}
	elems := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		a4 := a.As4()
		// numgen writes its result in host byte order.
		elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: a4[:]}
	}
	if err := b.set(m, elems); err != nil {
		return nil, err
	}
	return cat(one(
		&expr.Numgen{Register: reg1, Modulus: uint32(len(addrs)), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
	), portExprs, one(nat)), nil
}
