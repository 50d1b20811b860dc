package node

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Docker's FORWARD chain (table ip filter, made by iptables-nft) drops
// what it does not know: on a node that also runs Docker, task egress and
// host-mode published ports (through the egress bridge) and routing-mesh
// flows (through the ingress endpoint) would be forwarded into that drop.
// Docker leaves one chain to its users, DOCKER-USER, jumped to first from
// FORWARD; the daemon inserts accepts for its own interfaces there, tagged
// with a comment naming them, and removes them when the node leaves. Our
// own tables still filter those flows (the mesh table only lets DNATed
// flows cross the ingress endpoint; the egress table keeps tasks of
// different networks apart): an accept in one table does not override a
// drop in another, only Docker's drop needed lifting.
const (
	dockerFilterTable = "filter"
	dockerUserChain   = "DOCKER-USER"
	// dockerUserTag starts the comment of every rule the daemon adds.
	dockerUserTag = "shoal overlay"
	// ctStatusDNAT is IPS_DST_NAT: the flow's destination was translated.
	ctStatusDNAT = 1 << 5
)

// dockerUserRules describes the rules for the egress bridge and the
// ingress endpoint: tasks' outgoing traffic, the replies to it, DNATed
// flows to tasks (host-mode ports) and routing-mesh flows in both
// directions.
func dockerUserRules(egressBridge, ingressLink string) [][]expr.Any {
	var rules [][]expr.Any
	if egressBridge != "" {
		rules = append(rules,
			append(ifname(expr.MetaKeyIIFNAME, egressBridge), accept()),
			append(append(ifname(expr.MetaKeyOIFNAME, egressBridge), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)...), accept()),
			append(append(ifname(expr.MetaKeyOIFNAME, egressBridge), ctBits(expr.CtKeySTATUS, ctStatusDNAT)...), accept()),
		)
	}
	if ingressLink != "" {
		rules = append(rules,
			append(ifname(expr.MetaKeyIIFNAME, ingressLink), accept()),
			append(ifname(expr.MetaKeyOIFNAME, ingressLink), accept()),
		)
	}
	return rules
}

func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: key, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }

// dockerUserComment tags the rules of one node (by its interface names,
// so several nodes sharing a namespace in tests never touch each other's).
func dockerUserComment(egressBridge, ingressLink string) string {
	return fmt.Sprintf("%s %s %s", dockerUserTag, egressBridge, ingressLink)
}

// dockerUserConn opens nftables in the namespace netnsFD (-1: the
// caller's) and finds Docker's DOCKER-USER chain; ok is false when there
// is none (no Docker, or Docker on legacy iptables, whose rules nftables
// cannot see).
func dockerUserConn(netnsFD int) (conn *nftables.Conn, table *nftables.Table, chain *nftables.Chain, ok bool, err error) {
	var opts []nftables.ConnOption
	if netnsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFD))
	}
	conn, err = nftables.New(opts...)
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("nftables: %w", err)
	}
	table = &nftables.Table{Name: dockerFilterTable, Family: nftables.TableFamilyIPv4}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("list the IPv4 chains: %w", err)
	}
	for _, c := range chains {
		if c.Name == dockerUserChain && c.Table != nil && c.Table.Name == dockerFilterTable {
			c.Table = table
			return conn, table, c, true, nil
		}
	}
	return conn, table, nil, false, nil
}

// ensureDockerUserRules puts the accepts for the node's egress bridge and
// ingress endpoint at the head of Docker's DOCKER-USER chain, replacing
// the ones an earlier run added. It reports whether the chain exists.
func ensureDockerUserRules(netnsFD int, egressBridge, ingressLink string) (bool, error) {
	conn, table, chain, ok, err := dockerUserConn(netnsFD)
	if err != nil || !ok {
		return false, err
	}
	comment := dockerUserComment(egressBridge, ingressLink)
	if err := deleteTagged(conn, table, chain, comment); err != nil {
		return true, err
	}
	rules := dockerUserRules(egressBridge, ingressLink)
	// Inserted at the head one by one: insert them last first.
	for i := len(rules) - 1; i >= 0; i-- {
		conn.InsertRule(&nftables.Rule{
			Table:    table,
			Chain:    chain,
			Exprs:    rules[i],
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		})
	}
	if err := conn.Flush(); err != nil {
		return true, fmt.Errorf("add accepts for %s and %s to chain %s: %w", egressBridge, ingressLink, dockerUserChain, err)
	}
	return true, nil
}

// removeDockerUserRules removes what ensureDockerUserRules added.
func removeDockerUserRules(netnsFD int, egressBridge, ingressLink string) error {
	conn, table, chain, ok, err := dockerUserConn(netnsFD)
	if err != nil || !ok {
		return err
	}
	if err := deleteTagged(conn, table, chain, dockerUserComment(egressBridge, ingressLink)); err != nil {
		return err
	}
	return nil
}

// deleteTagged deletes the chain's rules whose comment is comment.
func deleteTagged(conn *nftables.Conn, table *nftables.Table, chain *nftables.Chain, comment string) error {
	rules, err := conn.GetRules(table, chain)
	if err != nil {
		return fmt.Errorf("list chain %s: %w", dockerUserChain, err)
	}
	n := 0
	for _, r := range rules {
		if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && c == comment {
			if err := conn.DelRule(r); err != nil {
				return fmt.Errorf("delete rule %d of chain %s: %w", r.Handle, dockerUserChain, err)
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("delete %d rules of chain %s: %w", n, dockerUserChain, err)
	}
	return nil
}
