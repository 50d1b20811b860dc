package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func newNetworkCmd(g *globalOptions) *cobra.Command {
	return newGroupCmd("network", "Manage overlay networks",
		newNetworkCreateCmd(g),
		newNetworkInspectCmd(g),
		newNetworkLsCmd(g),
		newNetworkRmCmd(g),
	)
}

// vxlanOption is the driver option docker's inspect shows a network's VNI
// under.
const vxlanOption = "com.docker.network.driver.overlay.vxlanid_list"

type networkCreateOptions struct {
	driver     string
	subnets    []string
	gateways   []string
	ipRanges   []string
	attachable bool
	internal   bool
	ingress    bool
	labels     labelAddValue
}

func newNetworkCreateCmd(g *globalOptions) *cobra.Command {
	o := &networkCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create an overlay network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec(cmd, args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.CreateNetwork, &shoalpb.CreateNetworkRequest{Spec: spec})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), resp.GetNetwork().GetId())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.driver, "driver", "d", "overlay", "Driver to manage the Network (only overlay)")
	f.StringSliceVar(&o.subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	f.StringSliceVar(&o.gateways, "gateway", nil, "IPv4 Gateway for the subnet")
	f.StringSliceVar(&o.ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	f.BoolVar(&o.attachable, "attachable", false, "Enable manual container attachment")
	f.BoolVar(&o.internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&o.ingress, "ingress", false, "Create swarm routing-mesh network")
	f.Var(&o.labels, "label", "Set metadata on a network")
	return cmd
}

// spec builds the network spec, refusing what the daemon would refuse
// about the values alone, so nothing is sent.
func (o *networkCreateOptions) spec(cmd *cobra.Command, name string) (*shoalpb.NetworkSpec, error) {
	if d := strings.ToLower(strings.TrimSpace(o.driver)); d != "overlay" {
		return nil, usageErrorf(cmd, "invalid driver %q: only overlay networks are supported", o.driver)
	}
	for _, l := range []struct {
		flag string
		vals []string
	}{{"--subnet", o.subnets}, {"--gateway", o.gateways}, {"--ip-range", o.ipRanges}} {
		if len(l.vals) > 1 {
			return nil, usageErrorf(cmd, "invalid %s %s: a network has one subnet, so only one %s is supported", l.flag, strings.Join(l.vals, ","), l.flag)
		}
	}
	ipam := &shoalpb.IPAMConfig{}
	if len(o.subnets) == 1 {
		ipam.Subnet = o.subnets[0]
		if err := checkCIDR("subnet", ipam.Subnet); err != nil {
			return nil, usageErrorf(cmd, "%v", err)
		}
	}
	if len(o.gateways) == 1 {
		ipam.Gateway = o.gateways[0]
		g, err := netip.ParseAddr(strings.TrimSpace(ipam.Gateway))
		switch {
		case err != nil || !g.Is4():
			return nil, usageErrorf(cmd, "invalid gateway %q: must be an IPv4 address", ipam.Gateway)
		case ipam.Subnet == "":
			return nil, usageErrorf(cmd, "invalid gateway %q: a gateway needs a subnet (--subnet)", ipam.Gateway)
		case !netip.MustParsePrefix(strings.TrimSpace(ipam.Subnet)).Contains(g):
			return nil, usageErrorf(cmd, "invalid gateway %q: it is not in subnet %s", ipam.Gateway, ipam.Subnet)
		}
	}
	if len(o.ipRanges) == 1 {
		ipam.IpRange = o.ipRanges[0]
		if err := checkCIDR("IP range", ipam.IpRange); err != nil {
			return nil, usageErrorf(cmd, "%v", err)
		}
		if ipam.Subnet == "" {
			return nil, usageErrorf(cmd, "invalid IP range %q: an IP range needs a subnet (--subnet)", ipam.IpRange)
		}
		r, s := netip.MustParsePrefix(strings.TrimSpace(ipam.IpRange)), netip.MustParsePrefix(strings.TrimSpace(ipam.Subnet))
		if r.Bits() < s.Bits() || !s.Contains(r.Addr()) {
			return nil, usageErrorf(cmd, "invalid IP range %q: it is not within subnet %s", ipam.IpRange, ipam.Subnet)
		}
	}
	spec := &shoalpb.NetworkSpec{
		Name:       name,
		Labels:     o.labels.labels,
		Driver:     "overlay",
		Attachable: o.attachable,
		Internal:   o.internal,
		Ingress:    o.ingress,
	}
	if ipam.Subnet != "" {
		spec.Ipam = ipam
	}
	return spec, nil
}

// networkRow is one line of `shoal network ls`; --format templates see
// its fields.
type networkRow struct {
	ID        string
	Name      string
	Driver    string
	Scope     string
	Internal  string
	IPv6      string
	Labels    string
	CreatedAt string
}

var networkRowFields = []string{"ID", "Name", "Driver", "Scope", "Internal", "IPv6", "Labels", "CreatedAt"}

var networkRowTitles = map[string]string{"ID": "NETWORK ID", "CreatedAt": "CREATED AT"}

const defaultNetworkTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

func newNetworkRow(n *shoalpb.Network, noTrunc bool) networkRow {
	id := n.GetId()
	if !noTrunc {
		id = shortID(id)
	}
	var labels []string
	for _, k := range sortedKeys(n.GetSpec().GetLabels()) {
		labels = append(labels, k+"="+n.GetSpec().GetLabels()[k])
	}
	return networkRow{
		ID:        id,
		Name:      n.GetSpec().GetName(),
		Driver:    n.GetSpec().GetDriver(),
		Scope:     "swarm",
		Internal:  strconv.FormatBool(n.GetSpec().GetInternal()),
		IPv6:      "false",
		Labels:    strings.Join(labels, ","),
		CreatedAt: unixNano(n.GetMeta().GetCreatedAt()).Format("2006-01-02 15:04:05 -0700 MST"),
	}
}

type networkLsOptions struct {
	quiet   bool
	noTrunc bool
	format  string
	filters filterValue
}

func newNetworkLsCmd(g *globalOptions) *cobra.Command {
	o := &networkLsOptions{}
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := listFormat(o.format, defaultNetworkTableFormat)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client) error {
				resp, err := call(cmd.Context(), c, c.control.ListNetworks, &shoalpb.ListNetworksRequest{Filters: o.filters.proto()})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if o.quiet {
					for _, n := range resp.GetNetworks() {
						fmt.Fprintln(out, newNetworkRow(n, o.noTrunc).ID)
					}
					return nil
				}
				items := make([]any, 0, len(resp.GetNetworks()))
				for _, n := range resp.GetNetworks() {
					items = append(items, newNetworkRow(n, o.noTrunc))
				}
				return tmpl.render(out, headerFor(networkRowFields, networkRowTitles), items)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate the output")
	f.StringVar(&o.format, "format", "", "Format the output using the given Go template")
	f.VarP(&o.filters, "filter", "f", "Provide filter values (driver, id, label, name, scope)")
	return cmd
}

// networkJSON is a network as `shoal network inspect` shows it: the
// shape of docker's network inspect, so templates written for docker keep
// working.
type networkJSON struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       ipamJSON
	Internal   bool
	Attachable bool
	Ingress    bool
	Options    map[string]string
	Labels     map[string]string
}

type ipamJSON struct {
	Driver string
	Config []ipamConfigJSON
}

type ipamConfigJSON struct {
	Subnet  string
	IPRange string `json:",omitempty"`
	Gateway string
}

func newNetworkJSON(n *shoalpb.Network) networkJSON {
	labels := n.GetSpec().GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	v := networkJSON{
		Name:       n.GetSpec().GetName(),
		ID:         n.GetId(),
		Created:    unixNano(n.GetMeta().GetCreatedAt()),
		Scope:      "swarm",
		Driver:     n.GetSpec().GetDriver(),
		IPAM:       ipamJSON{Driver: "default", Config: []ipamConfigJSON{}},
		Internal:   n.GetSpec().GetInternal(),
		Attachable: n.GetSpec().GetAttachable(),
		Ingress:    n.GetSpec().GetIngress(),
		Options:    map[string]string{vxlanOption: strconv.FormatUint(uint64(n.GetVni()), 10)},
		Labels:     labels,
	}
	if ipam := n.GetIpam(); ipam.GetSubnet() != "" {
		v.IPAM.Config = append(v.IPAM.Config, ipamConfigJSON{Subnet: ipam.GetSubnet(), IPRange: ipam.GetIpRange(), Gateway: ipam.GetGateway()})
	}
	return v
}

type networkInspectOptions struct {
	format string
}

func newNetworkInspectCmd(g *globalOptions) *cobra.Command {
	o := &networkInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *templateFormat
			if o.format != "" {
				var err error
				if tmpl, err = parseFormat(o.format); err != nil {
					return err
				}
			}
			return g.withClient(func(c *client) error {
				var nets []networkJSON
				var errs []string
				for _, ref := range args {
					resp, err := call(cmd.Context(), c, c.control.GetNetwork, &shoalpb.GetNetworkRequest{NetworkRef: ref})
					var de *daemonError
					switch {
					case err == nil:
						nets = append(nets, newNetworkJSON(resp.GetNetwork()))
					case isNotFound(err):
						errs = append(errs, "Error: No such network: "+ref)
					case errors.As(err, &de):
						errs = append(errs, err.Error())
					default:
						return err
					}
				}
				if err := printNetworks(cmd.OutOrStdout(), tmpl, nets); err != nil {
					return err
				}
				if len(errs) > 0 {
					return errors.New(strings.Join(errs, "\n"))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func printNetworks(w io.Writer, tmpl *templateFormat, nets []networkJSON) error {
	if tmpl != nil {
		for _, n := range nets {
			if err := tmpl.execute(w, n); err != nil {
				return err
			}
		}
		return nil
	}
	if nets == nil {
		nets = []networkJSON{}
	}
	return writeJSON(w, nets)
}

func newNetworkRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client) error {
				return removeEach(cmd, "network", args, func(ref string) error {
					_, err := call(cmd.Context(), c, c.control.RemoveNetwork, &shoalpb.RemoveNetworkRequest{NetworkRef: ref})
					return err
				})
			})
		},
	}
}
