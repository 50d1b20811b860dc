package docker

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// defaultStopGrace is the time between the stop signal and SIGKILL when the
// spec leaves it unset.
const defaultStopGrace = 10 * time.Second

// containerConfig is a task's container as the engine is asked to make it.
type containerConfig struct {
	name   string
	image  string
	config *container.Config
	host   *container.HostConfig
	// grace is the stop grace period; the engine counts it in whole
	// seconds (stopTimeout).
	grace       time.Duration
	stopTimeout int
	stopSignal  string
}

// validName is the engine's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ContainerName returns the name of t's container on node nodeID:
// <service name>.<slot, or the node ID for tasks without one>.<task ID>.
func ContainerName(t *shoalpb.Task, nodeID string) (string, error) {
	if t.GetId() == "" {
		return "", errors.New("task without an ID")
	}
	if t.GetServiceName() == "" {
		return "", fmt.Errorf("task %q has no service name", t.GetId())
	}
	middle := nodeID
	if t.GetSlot() > 0 {
		middle = strconv.FormatUint(t.GetSlot(), 10)
	} else if t.GetNodeId() != "" {
		middle = t.GetNodeId()
	}
	name := t.GetServiceName() + "." + middle + "." + t.GetId()
	if !validName.MatchString(name) {
		return "", fmt.Errorf("task %q: container name %q is not a valid container name (letters, digits, '_', '.', '-')", t.GetId(), name)
	}
	return name, nil
}

// containerConfig maps t's spec onto the engine's configuration.
func (e *Executor) containerConfig(t *shoalpb.Task) (*containerConfig, error) {
	name, err := ContainerName(t, e.nodeID)
	if err != nil {
		return nil, err
	}
	spec := t.GetSpec().GetContainer()
	if spec == nil {
		return nil, fmt.Errorf("task %q has no container spec", t.GetId())
	}
	if spec.GetImage() == "" {
		return nil, fmt.Errorf("task %q has no image", t.GetId())
	}
	grace := defaultStopGrace
	if spec.StopGracePeriodNs != nil {
		grace = time.Duration(spec.GetStopGracePeriodNs())
		if grace < 0 {
			return nil, fmt.Errorf("task %q: stop grace period %v is negative", t.GetId(), grace)
		}
	}
	// The engine counts whole seconds: round up, so a task never gets less
	// time than it asked for.
	stopTimeout := int((grace + time.Second - 1) / time.Second)

	labels := make(map[string]string, len(spec.GetLabels())+4)
	for k, v := range spec.GetLabels() {
		labels[k] = v
	}
	// Set last: the spec's labels cannot disown a container.
	labels[LabelNodeID] = e.nodeID
	labels[LabelTaskID] = t.GetId()
	labels[LabelServiceID] = t.GetServiceId()
	labels[LabelServiceName] = t.GetServiceName()

	health, err := healthConfig(spec.GetHealthcheck())
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", t.GetId(), err)
	}
	mounts, err := mounts(spec.GetMounts())
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", t.GetId(), err)
	}
	res, err := resources(t.GetSpec().GetResources())
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", t.GetId(), err)
	}

	cfg := &container.Config{
		Image:       spec.GetImage(),
		Hostname:    spec.GetHostname(),
		User:        spec.GetUser(),
		Env:         slices.Clone(spec.GetEnv()),
		WorkingDir:  spec.GetDir(),
		Labels:      labels,
		StopSignal:  spec.GetStopSignal(),
		StopTimeout: &stopTimeout,
		Healthcheck: health,
	}
	if len(spec.GetCommand()) > 0 {
		cfg.Entrypoint = slices.Clone(spec.GetCommand())
	}
	if len(spec.GetArgs()) > 0 {
		cfg.Cmd = slices.Clone(spec.GetArgs())
	}
	network := e.NetworkMode
	if network == "" {
		network = DefaultNetworkMode
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(network),
		Mounts:      mounts,
		Resources:   res,
		// Restarts are the orchestrator's: a task's container runs once.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	return &containerConfig{
		name:        name,
		image:       spec.GetImage(),
		config:      cfg,
		host:        host,
		grace:       grace,
		stopTimeout: stopTimeout,
		stopSignal:  spec.GetStopSignal(),
	}, nil
}

func healthConfig(hc *shoalpb.HealthConfig) (*container.HealthConfig, error) {
	if hc == nil {
		return nil, nil
	}
	for _, d := range []struct {
		what string
		ns   int64
	}{{"interval", hc.GetIntervalNs()}, {"timeout", hc.GetTimeoutNs()}, {"start period", hc.GetStartPeriodNs()}} {
		if d.ns < 0 {
			return nil, fmt.Errorf("health check %s %v is negative", d.what, time.Duration(d.ns))
		}
	}
	if hc.GetRetries() < 0 {
		return nil, fmt.Errorf("health check retries %d is negative", hc.GetRetries())
	}
	if test := hc.GetTest(); len(test) > 0 {
		switch test[0] {
		case "NONE", "CMD", "CMD-SHELL":
		default:
			return nil, fmt.Errorf("health check test %q does not start with CMD, CMD-SHELL or NONE", test)
		}
	}
	return &container.HealthConfig{
		Test:        slices.Clone(hc.GetTest()),
		Interval:    time.Duration(hc.GetIntervalNs()),
		Timeout:     time.Duration(hc.GetTimeoutNs()),
		StartPeriod: time.Duration(hc.GetStartPeriodNs()),
		Retries:     int(hc.GetRetries()),
	}, nil
}

func mounts(specs []*shoalpb.Mount) ([]mount.Mount, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make([]mount.Mount, 0, len(specs))
	targets := map[string]bool{}
	for _, m := range specs {
		target := m.GetTarget()
		if !path.IsAbs(target) {
			return nil, fmt.Errorf("mount target %q is not an absolute path", target)
		}
		if targets[path.Clean(target)] {
			return nil, fmt.Errorf("mount target %q is used twice", target)
		}
		targets[path.Clean(target)] = true
		dm := mount.Mount{Source: m.GetSource(), Target: target, ReadOnly: m.GetReadOnly()}
		switch m.GetType() {
		case shoalpb.Mount_TYPE_BIND:
			dm.Type = mount.TypeBind
			if !path.IsAbs(m.GetSource()) {
				return nil, fmt.Errorf("bind mount source %q (target %q) is not an absolute path", m.GetSource(), target)
			}
			if p := m.GetBindPropagation(); p != "" {
				if !slices.Contains(mount.Propagations, mount.Propagation(p)) {
					return nil, fmt.Errorf("bind mount %q: propagation %q is not one of %v", target, p, mount.Propagations)
				}
				dm.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(p)}
			}
		case shoalpb.Mount_TYPE_VOLUME:
			dm.Type = mount.TypeVolume
			if m.GetVolumeNocopy() || len(m.GetVolumeLabels()) > 0 || m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOptions()) > 0 {
				dm.VolumeOptions = &mount.VolumeOptions{NoCopy: m.GetVolumeNocopy(), Labels: m.GetVolumeLabels()}
				if m.GetVolumeDriver() != "" || len(m.GetVolumeDriverOptions()) > 0 {
					dm.VolumeOptions.DriverConfig = &mount.Driver{Name: m.GetVolumeDriver(), Options: m.GetVolumeDriverOptions()}
				}
			}
		case shoalpb.Mount_TYPE_TMPFS:
			dm.Type = mount.TypeTmpfs
			if m.GetSource() != "" {
				return nil, fmt.Errorf("tmpfs mount %q has a source %q", target, m.GetSource())
			}
			if m.GetTmpfsSizeBytes() < 0 {
				return nil, fmt.Errorf("tmpfs mount %q: size %d is negative", target, m.GetTmpfsSizeBytes())
			}
			if m.GetTmpfsMode() > 0o7777 {
				return nil, fmt.Errorf("tmpfs mount %q: mode %#o is not a file mode", target, m.GetTmpfsMode())
			}
			if m.GetTmpfsSizeBytes() > 0 || m.GetTmpfsMode() != 0 {
				dm.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.GetTmpfsSizeBytes(), Mode: os.FileMode(m.GetTmpfsMode())}
			}
		default:
			return nil, fmt.Errorf("mount %q has unknown type %v", target, m.GetType())
		}
		out = append(out, dm)
	}
	return out, nil
}

func resources(r *shoalpb.ResourceRequirements) (container.Resources, error) {
	var res container.Resources
	lim, resv := r.GetLimits(), r.GetReservations()
	for _, v := range []struct {
		what string
		n    int64
	}{
		{"CPU limit (nano CPUs)", lim.GetNanoCpus()},
		{"memory limit (bytes)", lim.GetMemoryBytes()},
		{"memory reservation (bytes)", resv.GetMemoryBytes()},
	} {
		if v.n < 0 {
			return res, fmt.Errorf("%s %d is negative", v.what, v.n)
		}
	}
	res.NanoCPUs = lim.GetNanoCpus()
	res.Memory = lim.GetMemoryBytes()
	res.MemoryReservation = resv.GetMemoryBytes()
	return res, nil
}
