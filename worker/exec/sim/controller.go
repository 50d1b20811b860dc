package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

type containerState int

const (
	stateCreated containerState = iota
	stateRunning
	stateExited
)

// killedCode is the exit code of a container killed by SIGKILL.
const killedCode = 137

// simContainer is one simulated container.
type simContainer struct {
	id  string
	pid int32
	img Image

	mu       sync.Mutex
	state    containerState
	exitCode int
	health   exec.HealthState
	timers   []*time.Timer
	// exited is closed when the container exits; decided when its health
	// check reaches its verdict.
	exited  chan struct{}
	decided chan struct{}
}

// start runs a created container; anything else is left as it is.
func (c *simContainer) start(healthDelay time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateCreated {
		return
	}
	c.state = stateRunning
	if c.health == exec.HealthStarting {
		if healthDelay <= 0 {
			c.decideLocked()
		} else {
			c.timers = append(c.timers, time.AfterFunc(healthDelay, c.decide))
		}
	}
	if c.img.Exits {
		if c.img.RunFor <= 0 {
			c.exitLocked(c.img.ExitCode)
			return
		}
		code := c.img.ExitCode
		c.timers = append(c.timers, time.AfterFunc(c.img.RunFor, func() { c.exit(code) }))
	}
}

func (c *simContainer) decide() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decideLocked()
}

func (c *simContainer) decideLocked() {
	if c.state != stateRunning || c.health != exec.HealthStarting {
		return
	}
	c.health = c.img.Health
	close(c.decided)
}

// exit ends a running container with code; it reports whether it ran.
func (c *simContainer) exit(code int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitLocked(code)
}

func (c *simContainer) exitLocked(code int) bool {
	if c.state != stateRunning {
		return false
	}
	c.state = stateExited
	c.exitCode = code
	for _, t := range c.timers {
		t.Stop()
	}
	c.timers = nil
	close(c.exited)
	return true
}

func (c *simContainer) snapshot() (containerState, int, exec.HealthState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.exitCode, c.health
}

// Controller runs one task's simulated container.
type Controller struct {
	e      *Executor
	taskID string
	image  string
	img    Image
	grace  time.Duration
}

var (
	_ exec.Controller        = (*Controller)(nil)
	_ exec.ContainerStatuser = (*Controller)(nil)
	_ exec.Healthy           = (*Controller)(nil)
	_ exec.HealthWaiter      = (*Controller)(nil)
)

func (c *Controller) container() (*simContainer, error) {
	sc := c.e.lookup(c.taskID)
	if sc == nil {
		return nil, fmt.Errorf("%w: sim container of task %q on node %q", exec.ErrTaskNotFound, c.taskID, c.e.cfg.NodeName)
	}
	return sc, nil
}

// Prepare creates the container after Config.PrepareDelay, or adopts the
// task's existing one.
func (c *Controller) Prepare(ctx context.Context) error {
	if err := delay(ctx, c.e.cfg.PrepareDelay); err != nil {
		return err
	}
	if c.img.Missing {
		return fmt.Errorf("%w: image %q is not on node %q (%s)", exec.ErrImageNotFound, c.image, c.e.cfg.NodeName, c.e.cfg.NodeID)
	}
	c.e.create(c.taskID, c.img)
	return nil
}

// Start runs the container after Config.StartDelay if it never ran.
func (c *Controller) Start(ctx context.Context) error {
	if err := delay(ctx, c.e.cfg.StartDelay); err != nil {
		return err
	}
	sc, err := c.container()
	if err != nil {
		return err
	}
	sc.start(c.e.cfg.HealthDelay)
	return nil
}

// Wait blocks until the container exits or its health check fails.
func (c *Controller) Wait(ctx context.Context) error {
	sc, err := c.container()
	if err != nil {
		return err
	}
	state, _, health := sc.snapshot()
	if state == stateCreated {
		return fmt.Errorf("%w: sim container of task %q", exec.ErrContainerNotStarted, c.taskID)
	}
	decided := sc.decided
	if health == exec.HealthNone {
		decided = nil
	}
	for {
		select {
		case <-sc.exited:
			_, code, _ := sc.snapshot()
			if code == 0 {
				return nil
			}
			return &exec.ExitError{Code: code}
		case <-decided:
			if _, _, h := sc.snapshot(); h == exec.HealthUnhealthy {
				return fmt.Errorf("%w: health check of task %q failed", exec.ErrContainerUnhealthy, c.taskID)
			}
			decided = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Shutdown stops the container: after Config.StopDelay it exits 0, unless
// that is beyond the grace period or the image ignores its stop signal,
// when it is killed once the grace period has passed.
func (c *Controller) Shutdown(ctx context.Context) error {
	sc := c.e.lookup(c.taskID)
	if sc == nil {
		return nil
	}
	if state, _, _ := sc.snapshot(); state != stateRunning {
		return nil
	}
	wait, code := c.e.cfg.StopDelay, 0
	if c.img.IgnoreStop || wait > c.grace {
		wait, code = c.grace, killedCode
	}
	if wait > 0 {
		// The simulated stop takes this long unless the container exits
		// by itself first.
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sc.exited:
			return nil
		case <-t.C:
		}
	}
	sc.exit(code)
	return nil
}

// Terminate kills the container at once.
func (c *Controller) Terminate(ctx context.Context) error {
	if sc := c.e.lookup(c.taskID); sc != nil {
		sc.exit(killedCode)
	}
	return nil
}

// Remove kills and forgets the container.
func (c *Controller) Remove(ctx context.Context) error {
	c.e.remove(c.taskID)
	return nil
}

// Close does nothing.
func (c *Controller) Close() error { return nil }

// ContainerStatus reports the simulated container's ID, pid and exit code.
func (c *Controller) ContainerStatus(ctx context.Context) (*shoalpb.ContainerStatus, error) {
	sc, err := c.container()
	if err != nil {
		return nil, err
	}
	state, code, _ := sc.snapshot()
	cs := &shoalpb.ContainerStatus{ContainerId: sc.id, ExitCode: int32(code)}
	if state == stateRunning {
		cs.Pid = sc.pid
	}
	return cs, nil
}

// Health reports the container's health.
func (c *Controller) Health(ctx context.Context) (exec.HealthState, error) {
	sc, err := c.container()
	if err != nil {
		return "", err
	}
	_, _, h := sc.snapshot()
	return h, nil
}

// WaitHealth blocks until the health check reaches its verdict.
func (c *Controller) WaitHealth(ctx context.Context) (exec.HealthState, error) {
	sc, err := c.container()
	if err != nil {
		return "", err
	}
	if _, _, h := sc.snapshot(); h != exec.HealthStarting {
		return h, nil
	}
	select {
	case <-sc.decided:
		_, _, h := sc.snapshot()
		return h, nil
	case <-sc.exited:
		// Both may be ready: a verdict reached before the exit wins.
		_, code, h := sc.snapshot()
		if h != exec.HealthStarting {
			return h, nil
		}
		return h, fmt.Errorf("sim container of task %q exited (code %d) before its health check passed", c.taskID, code)
	case <-ctx.Done():
		return exec.HealthStarting, ctx.Err()
	}
}
