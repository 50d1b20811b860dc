package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Network is the node's overlay data plane, as the executor needs it for
// tasks attached to overlay networks. Such a task runs in two containers:
// a sandbox, which holds the task's network namespace from before the task
// starts until it is removed, and the task's own container, which joins
// the sandbox's namespace. The executor starts the sandbox, hands its
// process to Attach, and only then starts the task.
type Network interface {
	// Attach plumbs t's network attachments into the network namespace
	// of process pid (the sandbox's) and serves its DNS. It is called
	// again after a daemon restart, so it must be idempotent. With publish
	// false, t's endpoints (its place behind its services' VIPs, names
	// and published ports) are not published yet — its container has a
	// health check — and endpoints it had published before stay.
	Attach(ctx context.Context, t *shoalpb.Task, pid int, publish bool) error
	// Publish publishes the endpoints of a task attached without them,
	// once its health check passed; it does nothing when they are
	// published already or were withdrawn since.
	Publish(ctx context.Context, t *shoalpb.Task) error
	// Detach undoes Attach; it is called before the sandbox goes, and
	// must succeed when there is nothing to undo.
	Detach(ctx context.Context, t *shoalpb.Task) error
	// ResolvConf is the path of the file mounted at /etc/resolv.conf in
	// t's container (pointing at the task's resolver).
	ResolvConf(t *shoalpb.Task) (string, error)
}

// Sandbox containers: named after their task, labelled like the task's
// container (so ownership checks and orphan removal cover them) plus
// LabelSandbox.
const (
	LabelSandbox = "shoal.sandbox"
	// SandboxImage is the image of sandbox containers, made on the node's
	// engine the first time one is needed.
	SandboxImage = "shoal/sandbox:1"
)

// SandboxName is the name of the sandbox container of task taskID.
func SandboxName(taskID string) string { return "shoal-sandbox." + taskID }

// sandboxConfig is the sandbox container of the task whose container is
// cfg: it takes the task's hostname (a container that joins another's
// network namespace cannot set its own) and gives the task's container
// the sandbox's namespace and the resolver's resolv.conf.
func (e *Executor) sandboxConfig(t *shoalpb.Task, cfg *containerConfig) (*containerConfig, error) {
	if e.Network == nil {
		return nil, fmt.Errorf("task %q is attached to overlay networks, but node %q has no overlay data plane", t.GetId(), e.nodeName)
	}
	resolv, err := e.Network.ResolvConf(t)
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", t.GetId(), err)
	}
	name := SandboxName(t.GetId())
	labels := map[string]string{LabelSandbox: "true"}
	for _, k := range []string{LabelNodeID, LabelTaskID, LabelServiceID, LabelServiceName} {
		labels[k] = cfg.config.Labels[k]
	}
	sb := &containerConfig{
		name:  name,
		image: SandboxImage,
		config: &container.Config{
			Image:      SandboxImage,
			Hostname:   cfg.config.Hostname,
			Labels:     labels,
			Entrypoint: []string{"/pause"},
		},
		host: &container.HostConfig{
			NetworkMode:   container.NetworkMode(DefaultNetworkMode),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		},
	}
	cfg.config.Hostname = ""
	cfg.host.NetworkMode = container.NetworkMode("container:" + name)
	cfg.host.Mounts = append(cfg.host.Mounts, mount.Mount{Type: mount.TypeBind, Source: resolv, Target: "/etc/resolv.conf", ReadOnly: true})
	return sb, nil
}

// sandboxImageOnce guards the making of the sandbox image per executor.
type sandboxImageOnce struct {
	mu   sync.Mutex
	done bool
}

// ensureSandboxImage makes the sandbox image on the engine unless it is
// there: an image of one file, the pause program for the engine's
// architecture.
func (e *Executor) ensureSandboxImage(ctx context.Context) error {
	e.sandboxImage.mu.Lock()
	defer e.sandboxImage.mu.Unlock()
	if e.sandboxImage.done {
		return nil
	}
	if _, err := e.api.ImageInspect(ctx, SandboxImage); err == nil {
		e.sandboxImage.done = true
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting image %s: %w", SandboxImage, err)
	}
	prog, err := pauseProgram(runtime.GOARCH)
	if err != nil {
		return err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(prog); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	rc, err := e.api.ImageImport(ctx, image.ImportSource{Source: &layer, SourceName: "-"}, SandboxImage,
		image.ImportOptions{Changes: []string{`ENTRYPOINT ["/pause"]`}, Platform: "linux/" + runtime.GOARCH})
	if err != nil {
		return fmt.Errorf("making image %s on node %q: %w", SandboxImage, e.nodeName, err)
	}
	// The import runs while its progress is read.
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("making image %s on node %q: %w", SandboxImage, e.nodeName, err)
	}
	e.sandboxImage.done = true
	return nil
}

// prepareSandbox creates the task's sandbox container unless it exists.
func (c *Controller) prepareSandbox(ctx context.Context) error {
	if err := c.e.ensureSandboxImage(ctx); err != nil {
		return err
	}
	if _, err := c.inspectSandbox(ctx); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return err
	}
	_, err := c.e.api.ContainerCreate(ctx, c.sandbox.config, c.sandbox.host, nil, nil, c.sandbox.name)
	if cerrdefs.IsNotFound(err) {
		// The image was removed since it was made: make it again.
		c.e.sandboxImage.mu.Lock()
		c.e.sandboxImage.done = false
		c.e.sandboxImage.mu.Unlock()
		if err := c.e.ensureSandboxImage(ctx); err != nil {
			return err
		}
		_, err = c.e.api.ContainerCreate(ctx, c.sandbox.config, c.sandbox.host, nil, nil, c.sandbox.name)
	}
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("creating sandbox container %s: %w", c.sandbox.name, err)
	}
	return nil
}

// inspectSandbox returns the sandbox container, checking it is this
// task's on this node; a missing one is the engine's not-found error.
func (c *Controller) inspectSandbox(ctx context.Context) (container.InspectResponse, error) {
	info, err := c.e.api.ContainerInspect(ctx, c.sandbox.name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return info, err
		}
		return info, fmt.Errorf("inspecting sandbox container %s: %w", c.sandbox.name, err)
	}
	if info.ContainerJSONBase == nil || info.State == nil || info.Config == nil {
		return info, fmt.Errorf("inspecting sandbox container %s: the engine's answer lacks its state", c.sandbox.name)
	}
	if l := info.Config.Labels; l[LabelTaskID] != c.taskID || l[LabelNodeID] != c.e.nodeID || l[LabelSandbox] != "true" {
		return info, fmt.Errorf("container %s (%s) has the name of task %q's sandbox but is not it", c.sandbox.name, info.ID, c.taskID)
	}
	return info, nil
}

// startSandbox starts the sandbox if it does not run, and attaches the
// task's networks to it (again, after a daemon restart). As docker does,
// a task whose container has a health check joins its services' VIPs,
// names and published ports only once the check passes (WaitHealth).
func (c *Controller) startSandbox(ctx context.Context, publish bool) error {
	info, err := c.inspectSandbox(ctx)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("sandbox container %s of task %q is gone", c.sandbox.name, c.taskID)
		}
		return err
	}
	if !info.State.Running {
		if err := c.e.api.ContainerStart(ctx, c.sandbox.name, container.StartOptions{}); err != nil {
			return fmt.Errorf("starting sandbox container %s: %w", c.sandbox.name, err)
		}
		if info, err = c.inspectSandbox(ctx); err != nil {
			return err
		}
		if !info.State.Running || info.State.Pid == 0 {
			return fmt.Errorf("sandbox container %s of task %q stopped right after it started (exit code %d)", c.sandbox.name, c.taskID, info.State.ExitCode)
		}
	}
	if err := c.e.Network.Attach(ctx, c.task, info.State.Pid, publish); err != nil {
		return fmt.Errorf("attaching task %q to its networks: %w", c.taskID, err)
	}
	return nil
}

// removeSandbox detaches the task's networks and removes its sandbox.
func (c *Controller) removeSandbox(ctx context.Context) error {
	var errs []error
	if err := c.e.Network.Detach(ctx, c.task); err != nil {
		errs = append(errs, fmt.Errorf("detaching task %q from its networks: %w", c.taskID, err))
	}
	info, err := c.inspectSandbox(ctx)
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		errs = append(errs, err)
	default:
		err := c.e.api.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing sandbox container %s: %w", c.sandbox.name, err))
		}
	}
	return errors.Join(errs...)
}
