package dns

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
)

// ResolvConf is what a resolv.conf file says.
type ResolvConf struct {
	Nameservers []netip.Addr
	Search      []string
	Options     []string
}

// ParseResolvConf reads resolv.conf content. Lines it does not understand
// are skipped; as in the C library, the last search (or domain) line wins.
func ParseResolvConf(data []byte) ResolvConf {
	var rc ResolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a)
			}
		case "search", "domain":
			rc.Search = append([]string(nil), fields[1:]...)
		case "options":
			rc.Options = append(rc.Options, fields[1:]...)
		}
	}
	return rc
}

// Upstreams returns the name servers as forwarding targets on port 53.
func (rc ResolvConf) Upstreams() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range rc.Nameservers {
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out
}

// TaskResolvConf returns the resolv.conf of a task that uses the embedded
// resolver: its address, the host's search domains, and ndots:0 so that
// names with dots (tasks.web, a stack's web.1.x) are tried as given first.
func TaskResolvConf(search []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by shoal: the embedded resolver answers service and task names\n")
	b.WriteString("# and forwards other names to the node's name servers.\n")
	b.WriteString("nameserver " + DefaultAddr.Addr().String() + "\n")
	var domains []string
	for _, d := range search {
		if d = strings.TrimSpace(d); d != "" && !strings.ContainsAny(d, " \t\n#;") {
			domains = append(domains, d)
		}
	}
	if len(domains) > 0 {
		b.WriteString("search " + strings.Join(domains, " ") + "\n")
	}
	b.WriteString("options ndots:0\n")
	return b.Bytes()
}
