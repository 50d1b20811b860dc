package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// withPort adds the default port to an address that has none.
func withPort(addr string, port int) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("empty address")
	}
	if h, p, err := net.SplitHostPort(addr); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", fmt.Errorf("invalid port %q in address %q", p, addr)
		}
		if h == "" {
			return "", fmt.Errorf("address %q has no host", addr)
		}
		return addr, nil
	}
	if strings.Contains(addr, ":") && net.ParseIP(addr) == nil {
		return "", fmt.Errorf("invalid address %q", addr)
	}
	return net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

// resolveListen returns the listen address, defaulting to 0.0.0.0:2377.
func resolveListen(listen, fallback string) (string, error) {
	if listen == "" {
		listen = fallback
	}
	if listen == "" {
		listen = DefaultListenAddr
	}
	addr, err := withPort(listen, DefaultPort)
	if err != nil {
		return "", fmt.Errorf("invalid listen address: %w", err)
	}
	h, _, _ := net.SplitHostPort(addr)
	if h != "0.0.0.0" && net.ParseIP(h) == nil {
		if ip, err := interfaceIP(h); err == nil {
			_, p, _ := net.SplitHostPort(addr)
			return net.JoinHostPort(ip, p), nil
		}
		return "", fmt.Errorf("invalid listen address %q: not an IP address or interface", listen)
	}
	return addr, nil
}

// resolveAdvertise returns host:port to advertise. advertise may be an IP,
// IP:port or an interface name; when empty, fallback (the daemon flag) is
// used, then the address the system would use to reach remote (for a
// join), then the only global address of the system.
func resolveAdvertise(advertise, fallback, listen, remote string) (string, error) {
	_, listenPort, _ := net.SplitHostPort(listen)
	port, _ := strconv.Atoi(listenPort)
	if port == 0 {
		port = DefaultPort
	}
	if advertise == "" {
		advertise = fallback
	}
	if advertise != "" {
		host, p, err := net.SplitHostPort(advertise)
		if err != nil {
			host, p = advertise, strconv.Itoa(port)
		}
		if net.ParseIP(host) == nil {
			ip, err := interfaceIP(host)
			if err != nil {
				return "", fmt.Errorf("invalid advertise address %q: %w", advertise, err)
			}
			host = ip
		}
		if ip := net.ParseIP(host); ip.IsUnspecified() || ip.IsLoopback() && remote != "" {
			return "", fmt.Errorf("advertise address %q must be an address other nodes can reach", advertise)
		}
		return withPort(net.JoinHostPort(host, p), port)
	}
	if lh, _, _ := net.SplitHostPort(listen); lh != "" && lh != "0.0.0.0" {
		return net.JoinHostPort(lh, strconv.Itoa(port)), nil
	}
	if remote != "" {
		c, err := net.Dial("udp", remote)
		if err == nil {
			defer c.Close()
			return net.JoinHostPort(c.LocalAddr().(*net.UDPAddr).IP.String(), strconv.Itoa(port)), nil
		}
	}
	ips, err := globalIPs()
	if err != nil {
		return "", err
	}
	switch len(ips) {
	case 0:
		return "", fmt.Errorf("could not find an address to advertise; specify one with --advertise-addr")
	case 1:
		return net.JoinHostPort(ips[0], strconv.Itoa(port)), nil
	}
	return "", fmt.Errorf("could not choose an IP address to advertise since this system has multiple addresses (%s); specify one with --advertise-addr", strings.Join(ips, ", "))
}

func interfaceIP(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("no interface or address %q", name)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("interface %s has no IPv4 address", name)
}

func globalIPs() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "docker") || strings.HasPrefix(ifc.Name, "veth") || strings.HasPrefix(ifc.Name, "br-") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				out = append(out, n.IP.String())
			}
		}
	}
	return out, nil
}
