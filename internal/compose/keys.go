package compose

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/compose-spec/compose-go/v2/types"
)

// Which compose keys a stack honours. Everything the conversion reads is
// listed in supportedPaths; any other key in a file (x- extensions aside)
// is reported: deprecated and forbidden keys with docker's words, the
// rest as "Ignoring unsupported options", as docker stack deploy does.

// supportedPaths are the keys the conversion reads, as compose-go path
// patterns ("*" any key, "[]" any list item). Defaults the loader adds
// (bind.create_host_path, ports' mode and protocol, depends_on's required)
// are listed too.
var supportedPaths = func() []tree.Path {
	service := []string{
		"image", "command", "entrypoint", "environment.*",
		"env_file.[].path", "env_file.[].required", "env_file.[].format",
		"labels.*", "label_file",
		"healthcheck.test", "healthcheck.interval", "healthcheck.timeout", "healthcheck.retries",
		"healthcheck.start_period", "healthcheck.disable",
		"stop_grace_period", "stop_signal", "user", "working_dir", "hostname", "tmpfs",
		"volumes.[].type", "volumes.[].source", "volumes.[].target", "volumes.[].read_only",
		"volumes.[].bind.propagation", "volumes.[].bind.create_host_path",
		"volumes.[].volume.nocopy", "volumes.[].volume.labels.*",
		"volumes.[].tmpfs.size", "volumes.[].tmpfs.mode",
		"ports.[].target", "ports.[].published", "ports.[].protocol", "ports.[].mode", "ports.[].name",
		"networks.*", "networks.*.aliases",
		"depends_on.*.condition", "depends_on.*.required",
		"deploy.mode", "deploy.replicas", "deploy.labels.*", "deploy.endpoint_mode",
		"deploy.resources.limits.cpus", "deploy.resources.limits.memory",
		"deploy.resources.reservations.cpus", "deploy.resources.reservations.memory",
		"deploy.restart_policy.condition", "deploy.restart_policy.delay",
		"deploy.restart_policy.max_attempts", "deploy.restart_policy.window",
		"deploy.placement.constraints", "deploy.placement.preferences.[].spread",
		"deploy.placement.max_replicas_per_node",
	}
	for _, c := range []string{"update_config", "rollback_config"} {
		for _, k := range []string{"parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"} {
			service = append(service, "deploy."+c+"."+k)
		}
	}
	paths := []tree.Path{"name", "networks.*", "volumes.*"}
	for _, k := range service {
		paths = append(paths, tree.Path("services.*."+k))
	}
	for _, k := range []string{
		"name", "driver", "external", "internal", "attachable", "labels.*",
		"ipam.config.[].subnet", "ipam.config.[].gateway", "ipam.config.[].ip_range",
	} {
		paths = append(paths, tree.Path("networks.*."+k))
	}
	for _, k := range []string{"name", "driver", "driver_opts.*", "external", "labels.*"} {
		paths = append(paths, tree.Path("volumes.*."+k))
	}
	return paths
}()

// deprecatedKeys are service keys docker ignores with an explanation.
var deprecatedKeys = map[string]string{
	"container_name": "Setting the container name is not supported.",
	"expose":         "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
}

const useDeployResources = "Set resource limits using deploy.resources"

// forbiddenKeys are service keys that would silently change what runs if
// ignored: a file using them is refused, as docker refuses them.
var forbiddenKeys = map[string]string{
	"volume_driver":   "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
	"volumes_from":    "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
	"cpu_quota":       useDeployResources,
	"cpu_shares":      useDeployResources,
	"cpu_period":      useDeployResources,
	"cpu_rt_period":   useDeployResources,
	"cpu_rt_runtime":  useDeployResources,
	"cpu_count":       useDeployResources,
	"cpu_percent":     useDeployResources,
	"cpus":            useDeployResources,
	"cpuset":          useDeployResources,
	"mem_limit":       useDeployResources,
	"mem_reservation": useDeployResources,
	"memswap_limit":   useDeployResources,
}

// keyReport collects what the loader's key screening found.
type keyReport struct {
	unsupported []tree.Path
}

func (r *keyReport) option() func(*loader.Options) {
	return loader.WithSupportedAttributes(supportedPaths, func(found []loader.UnsupportedAttribute) {
		for _, f := range found {
			r.unsupported = append(r.unsupported, f.Path)
		}
	})
}

// serviceKey splits services.<name>.<key...> into the service name and
// the key below it.
func serviceKey(p tree.Path) (service, key string, ok bool) {
	parts := p.Parts()
	if len(parts) < 3 || parts[0] != "services" {
		return "", "", false
	}
	for i := range parts {
		parts[i] = tree.Path(parts[i]).String()
	}
	return parts[1], strings.ReplaceAll(strings.Join(parts[2:], "."), ".[]", "[]"), true
}

// checkKeys turns the screening into warnings, and refuses forbidden keys
// with the service and key named. network_mode: none is honoured (the
// service joins no network); other network modes are not.
func checkKeys(report *keyReport, project *types.Project) (warnings []string, err error) {
	unsupported := map[string]bool{}
	deprecated := map[string]bool{}
	var forbidden []string
	for _, p := range report.unsupported {
		service, key, ok := serviceKey(p)
		switch {
		case ok && key == "network_mode" && project.Services[service].NetworkMode == "none":
		case !ok:
			unsupported[strings.ReplaceAll(p.String(), ".[]", "[]")] = true
		case forbiddenKeys[key] != "":
			forbidden = append(forbidden, "services."+service+"."+key)
		case deprecatedKeys[key] != "":
			deprecated[key] = true
		default:
			unsupported[key] = true
		}
	}
	if len(forbidden) > 0 {
		sort.Strings(forbidden)
		_, key, _ := serviceKey(tree.Path(forbidden[0]))
		return nil, problemf(forbidden[0], "is not supported: %s", forbiddenKeys[key])
	}
	if len(unsupported) > 0 {
		warnings = append(warnings, "Ignoring unsupported options: "+strings.Join(sortedKeys(unsupported), ", "))
	}
	if len(deprecated) > 0 {
		var msgs []string
		for _, k := range sortedKeys(deprecated) {
			msgs = append(msgs, fmt.Sprintf("%s: %s", k, deprecatedKeys[k]))
		}
		warnings = append(warnings, "Ignoring deprecated options:\n\n"+strings.Join(msgs, "\n\n"))
	}
	return warnings, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return slices.Clip(keys)
}
