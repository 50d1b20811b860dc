package main

import (
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// endpointUpdateFlags are the flags of `service update` that change a
// service's networks and endpoint: --network-add, --network-rm,
// --publish-add, --publish-rm and --endpoint-mode.
type endpointUpdateFlags struct {
	networkAdd networkFlagValue
	networkRm  []string
	publishAdd portFlagValue
	publishRm  portFlagValue
	mode       *enumValue
}

func newEndpointUpdateFlags() *endpointUpdateFlags {
	return &endpointUpdateFlags{mode: newEnum("endpoint mode", "vip", "vip", "dnsrr")}
}

func (e *endpointUpdateFlags) add(f *pflag.FlagSet) {
	f.Var(&e.networkAdd, "network-add", "Add a network (NETWORK, or name=NETWORK,alias=ALIAS)")
	f.StringArrayVar(&e.networkRm, "network-rm", nil, "Remove a network (name or ID)")
	f.Var(&e.publishAdd, "publish-add", "Add or update a published port ([PUBLISHED:]TARGET[/PROTOCOL], or published=P,target=T,…)")
	f.Var(&e.publishRm, "publish-rm", "Remove a published port by its target port (TARGET[/PROTOCOL])")
	f.Var(e.mode, "endpoint-mode", `Endpoint mode ("vip", "dnsrr")`)
}

// apply changes spec's networks and endpoint as the flags ask. Networks to
// remove are given by name or ID; spec holds IDs, so names are looked up.
func (e *endpointUpdateFlags) apply(cmd *cobra.Command, c *client, spec *shoalpb.ServiceSpec) error {
	f := cmd.Flags()
	if len(e.networkRm) > 0 || len(e.networkAdd.attachments) > 0 {
		if spec.Task == nil {
			spec.Task = &shoalpb.TaskSpec{}
		}
		drop := map[string]bool{}
		for _, ref := range e.networkRm {
			drop[ref] = true
			resp, err := call(cmd.Context(), c, c.control.GetNetwork, &shoalpb.GetNetworkRequest{NetworkRef: ref})
			switch {
			case err == nil:
				drop[resp.GetNetwork().GetId()] = true
			case !isNotFound(err):
				return err
			}
		}
		spec.Task.Networks = slices.DeleteFunc(spec.Task.Networks, func(a *shoalpb.NetworkAttachmentConfig) bool { return drop[a.GetTarget()] })
		spec.Task.Networks = append(spec.Task.Networks, e.networkAdd.attachments...)
	}
	modeChanged := f.Changed("endpoint-mode")
	if !modeChanged && len(e.publishAdd.ports) == 0 && len(e.publishRm.ports) == 0 {
		return nil
	}
	ep := spec.Endpoint
	if ep == nil {
		ep = &shoalpb.EndpointSpec{}
	}
	if modeChanged {
		ep.Mode = endpointModes[e.mode.value]
	}
	ep.Ports = slices.DeleteFunc(ep.Ports, func(p *shoalpb.PortConfig) bool {
		for _, rm := range e.publishRm.ports {
			if p.GetTargetPort() == rm.GetTargetPort() && p.GetProtocol() == rm.GetProtocol() &&
				(rm.GetPublishedPort() == 0 || rm.GetPublishedPort() == p.GetPublishedPort()) {
				return true
			}
		}
		for _, add := range e.publishAdd.ports {
			// An added port replaces the one published on the same port.
			if add.GetPublishedPort() != 0 && add.GetPublishedPort() == p.GetPublishedPort() && add.GetProtocol() == p.GetProtocol() {
				return true
			}
		}
		return false
	})
	ep.Ports = append(ep.Ports, e.publishAdd.ports...)
	spec.Endpoint = ep
	if !modeChanged && ep.Mode == shoalpb.EndpointSpec_MODE_VIP && len(ep.Ports) == 0 {
		spec.Endpoint = nil
	}
	return nil
}
