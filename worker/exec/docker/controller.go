package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// Controller runs one task's container. It addresses the container by its
// name, so a new controller for the same task finds the container an
// earlier one made.
type Controller struct {
	e      *Executor
	taskID string
	task   *shoalpb.Task
	cfg    *containerConfig
	// sandbox is the container holding the task's network namespace, for
	// tasks attached to overlay networks (nil for the others).
	sandbox *containerConfig
}

var (
	_ exec.Controller        = (*Controller)(nil)
	_ exec.ControllerLogs    = (*Controller)(nil)
	_ exec.ContainerStatuser = (*Controller)(nil)
	_ exec.Healthy           = (*Controller)(nil)
	_ exec.HealthWaiter      = (*Controller)(nil)
)

// Name returns the container's name.
func (c *Controller) Name() string { return c.cfg.name }

// inspect returns the container, or exec.ErrTaskNotFound.
func (c *Controller) inspect(ctx context.Context) (container.InspectResponse, error) {
	info, err := c.e.api.ContainerInspect(ctx, c.cfg.name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return info, fmt.Errorf("%w: container %s of task %q on node %q", exec.ErrTaskNotFound, c.cfg.name, c.taskID, c.e.nodeName)
		}
		return info, fmt.Errorf("inspecting container %s: %w", c.cfg.name, err)
	}
	if info.ContainerJSONBase == nil || info.State == nil || info.Config == nil {
		return info, fmt.Errorf("inspecting container %s: the engine's answer lacks its state", c.cfg.name)
	}
	return info, nil
}

// Prepare checks the image is present and creates the container, or adopts
// the container of the same task that already exists.
func (c *Controller) Prepare(ctx context.Context) error {
	if c.sandbox != nil {
		// The task's container joins the sandbox's namespace, so the
		// sandbox must exist before it is created.
		if err := c.prepareSandbox(ctx); err != nil {
			return err
		}
	}
	info, err := c.inspect(ctx)
	if err == nil {
		return c.adopt(info)
	}
	if !errors.Is(err, exec.ErrTaskNotFound) {
		return err
	}
	if _, err := c.e.api.ImageInspect(ctx, c.cfg.image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return c.imageNotFound()
		}
		return fmt.Errorf("inspecting image %q: %w", c.cfg.image, err)
	}
	_, err = c.e.api.ContainerCreate(ctx, c.cfg.config, c.cfg.host, nil, nil, c.cfg.name)
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsConflict(err):
		// Made meanwhile by another controller of this task, or by an
		// earlier create whose caller gave up on it (an interrupted
		// step): the engine may still be making it, so it can take a
		// moment to become visible.
		info, ierr := c.awaitCreated(ctx)
		if ierr == nil {
			return c.adopt(info)
		}
	case cerrdefs.IsNotFound(err):
		// The image went away since it was inspected.
		return c.imageNotFound()
	}
	return fmt.Errorf("creating container %s: %w", c.cfg.name, err)
}

// conflictWait bounds how long Prepare waits for a container whose name
// is taken to become visible.
const conflictWait = 10 * time.Second

// awaitCreated inspects the container until it is visible, for up to
// conflictWait.
func (c *Controller) awaitCreated(ctx context.Context) (container.InspectResponse, error) {
	deadline := time.Now().Add(conflictWait)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		info, err := c.inspect(ctx)
		if err == nil || !errors.Is(err, exec.ErrTaskNotFound) || time.Now().After(deadline) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Controller) imageNotFound() error {
	return fmt.Errorf("%w: image %q is not on node %q (%s), and images are never pulled",
		exec.ErrImageNotFound, c.cfg.image, c.e.nodeName, c.e.nodeID)
}

// adopt accepts an existing container only if it is this task's on this
// node.
func (c *Controller) adopt(info container.InspectResponse) error {
	labels := info.Config.Labels
	if labels[LabelTaskID] != c.taskID || labels[LabelNodeID] != c.e.nodeID {
		return fmt.Errorf("container %s (%s) has the name of task %q but is task %q's of node %q",
			c.cfg.name, info.ID, c.taskID, labels[LabelTaskID], labels[LabelNodeID])
	}
	return nil
}

// Start starts the container if it never ran.
func (c *Controller) Start(ctx context.Context) error {
	info, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	if c.sandbox != nil && (info.State.Status == container.StateCreated || info.State.Running) {
		// Networks are attached before the task starts, and again when
		// a restarted daemon adopts a running task.
		if err := c.startSandbox(ctx, !hasHealthcheck(info)); err != nil {
			return err
		}
	}
	if info.State.Status != container.StateCreated {
		// Running, or ran already: Wait reports how it ended.
		return nil
	}
	if err := c.e.api.ContainerStart(ctx, c.cfg.name, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting container %s: %w", c.cfg.name, err)
	}
	return nil
}

// Wait blocks until the container exits, or until a health check it has
// fails (exec.ErrContainerUnhealthy).
func (c *Controller) Wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	var healthMsgs <-chan events.Message
	var healthErrs <-chan error
	if healthOf(info) != exec.HealthNone {
		// Subscribe, then look again, so no health change is missed.
		healthMsgs, healthErrs = c.e.api.Events(ctx, c.eventOptions(events.ActionHealthStatus))
		if info, err = c.inspect(ctx); err != nil {
			return err
		}
	}
	switch {
	case info.State.Status == container.StateCreated:
		return fmt.Errorf("%w: container %s", exec.ErrContainerNotStarted, c.cfg.name)
	case !info.State.Running:
		return exitResult(info.State.ExitCode, info.State)
	case healthOf(info) == exec.HealthUnhealthy:
		return c.unhealthy()
	}
	waitC, waitErrs := c.e.api.ContainerWait(ctx, c.cfg.name, container.WaitConditionNotRunning)
	for {
		select {
		case r := <-waitC:
			if r.Error != nil && r.Error.Message != "" {
				return fmt.Errorf("waiting for container %s: %s", c.cfg.name, r.Error.Message)
			}
			if r.StatusCode == 0 {
				return nil
			}
			var state *container.State
			if info, err := c.inspect(ctx); err == nil {
				state = info.State
			}
			return exitResult(int(r.StatusCode), state)
		case err := <-waitErrs:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("waiting for container %s: %w", c.cfg.name, err)
		case m := <-healthMsgs:
			if m.Action == events.ActionHealthStatusUnhealthy {
				return c.unhealthy()
			}
		case <-healthErrs:
			// The event stream broke: the exit is still watched, the
			// health no longer is.
			healthMsgs, healthErrs = nil, nil
		}
	}
}

func (c *Controller) unhealthy() error {
	return fmt.Errorf("%w: health check of container %s of task %q failed", exec.ErrContainerUnhealthy, c.cfg.name, c.taskID)
}

// eventOptions selects this container's events of the given actions (each
// a prefix, as the engine matches health_status loosely).
func (c *Controller) eventOptions(actions ...events.Action) events.ListOptions {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("container", c.cfg.name),
		filters.Arg("label", LabelNodeID+"="+c.e.nodeID),
	)
	for _, a := range actions {
		f.Add("event", string(a))
	}
	return events.ListOptions{Filters: f}
}

// exitResult is Wait's result for an exit code; state, when known, tells
// why the container died.
func exitResult(code int, state *container.State) error {
	if code == 0 {
		return nil
	}
	ee := &exec.ExitError{Code: code}
	if state != nil {
		switch {
		case state.OOMKilled:
			ee.Cause = errors.New("killed for lack of memory")
		case state.Error != "":
			ee.Cause = errors.New(state.Error)
		}
	}
	return ee
}

// Shutdown stops the container with its stop signal and kills it once the
// grace period has passed. Stopping a stopped or missing container does
// nothing.
func (c *Controller) Shutdown(ctx context.Context) error {
	info, err := c.inspect(ctx)
	if errors.Is(err, exec.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.State.Running {
		return nil
	}
	timeout := c.cfg.stopTimeout
	err = c.e.api.ContainerStop(ctx, c.cfg.name, container.StopOptions{Signal: c.cfg.stopSignal, Timeout: &timeout})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stopping container %s (grace %v): %w", c.cfg.name, c.cfg.grace, err)
	}
	return nil
}

// Terminate kills the container at once.
func (c *Controller) Terminate(ctx context.Context) error {
	err := c.e.api.ContainerKill(ctx, c.cfg.name, "KILL")
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "is not running") {
		return nil
	}
	return fmt.Errorf("killing container %s: %w", c.cfg.name, err)
}

// Remove removes the container, killing it if it runs, and its anonymous
// volumes, then the task's sandbox and network attachments if it has them.
func (c *Controller) Remove(ctx context.Context) error {
	if err := c.removeContainer(ctx); err != nil {
		return err
	}
	if c.sandbox != nil {
		return c.removeSandbox(ctx)
	}
	return nil
}

func (c *Controller) removeContainer(ctx context.Context) error {
	info, err := c.inspect(ctx)
	if errors.Is(err, exec.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.adopt(info); err != nil {
		return fmt.Errorf("not removing: %w", err)
	}
	err = c.e.api.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing container %s (%s): %w", c.cfg.name, info.ID, err)
	}
	return nil
}

// Close does nothing: a controller holds no resources between calls.
func (c *Controller) Close() error { return nil }

// ContainerStatus reports the container's ID, process and exit code.
func (c *Controller) ContainerStatus(ctx context.Context) (*shoalpb.ContainerStatus, error) {
	info, err := c.inspect(ctx)
	if err != nil {
		return nil, err
	}
	return &shoalpb.ContainerStatus{
		ContainerId: info.ID,
		Pid:         int32(info.State.Pid),
		ExitCode:    int32(info.State.ExitCode),
	}, nil
}

// Health reports the container's health check state.
func (c *Controller) Health(ctx context.Context) (exec.HealthState, error) {
	info, err := c.inspect(ctx)
	if err != nil {
		return "", err
	}
	return healthOf(info), nil
}

// hasHealthcheck reports whether the container runs a health check: its
// own or its image's (the engine merges the two when it creates it).
func hasHealthcheck(info container.InspectResponse) bool {
	h := info.Config.Healthcheck
	return h != nil && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func healthOf(info container.InspectResponse) exec.HealthState {
	h := info.State.Health
	if h == nil {
		return exec.HealthNone
	}
	switch h.Status {
	case container.Healthy:
		return exec.HealthHealthy
	case container.Unhealthy:
		return exec.HealthUnhealthy
	case container.Starting:
		return exec.HealthStarting
	}
	return exec.HealthNone
}

// WaitHealth blocks until the container's health check decides. It fails if
// the container stops before. Once the container is healthy, the task's
// endpoints on overlay networks are published.
func (c *Controller) WaitHealth(ctx context.Context) (exec.HealthState, error) {
	s, err := c.waitHealth(ctx)
	if err == nil && s != exec.HealthUnhealthy && s != exec.HealthStarting && c.sandbox != nil {
		if err := c.e.Network.Publish(ctx, c.task); err != nil {
			return s, fmt.Errorf("publishing the endpoints of task %q: %w", c.taskID, err)
		}
	}
	return s, err
}

func (c *Controller) waitHealth(ctx context.Context) (exec.HealthState, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := c.e.api.Events(ctx, c.eventOptions(events.ActionHealthStatus, events.ActionDie, events.ActionDestroy))
	for {
		info, err := c.inspect(ctx)
		if err != nil {
			return "", err
		}
		if s := healthOf(info); s != exec.HealthStarting {
			return s, nil
		}
		if !info.State.Running {
			return exec.HealthStarting, fmt.Errorf("container %s stopped (exit code %d) before its health check passed",
				c.cfg.name, info.State.ExitCode)
		}
		select {
		case <-ctx.Done():
			return exec.HealthStarting, ctx.Err()
		case <-msgs:
			// Something changed: look again.
		case err := <-errs:
			if ctx.Err() != nil {
				return exec.HealthStarting, ctx.Err()
			}
			return exec.HealthStarting, fmt.Errorf("watching the health of container %s: %w", c.cfg.name, err)
		}
	}
}
