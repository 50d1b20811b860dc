package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Docker's health check defaults, used to bound the wait for a first
// verdict when the spec leaves a value unset.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	// healthSlack, plus one more interval, is added to the longest time a
	// check can take to decide, for the runtime's own latency.
	healthSlack = time.Second
	// healthPollPeriod is how often Do asks a controller that can only
	// report its health (no HealthWaiter) whether the check has decided.
	healthPollPeriod = 100 * time.Millisecond
)

// Do moves t one step towards its desired state through ctlr and returns
// the task's new status, stamped with now().
//
// The steps are NEW/PENDING/ASSIGNED → ACCEPTED → PREPARING →(Prepare)
// READY → STARTING →(Start) RUNNING →(Wait) COMPLETE or FAILED. When the
// container has a health check, RUNNING is reported only once it is healthy;
// an unhealthy container is stopped and the task FAILED. A desired state of
// SHUTDOWN or beyond stops the container (Shutdown) and reports SHUTDOWN.
// A desired state of READY stops the steps at READY.
//
// Failures of the task are statuses, not errors: Prepare's error makes the
// task REJECTED, Start's, Wait's and the health check's make it FAILED, with
// the error's text in Err. Do returns an error, with the unchanged status,
// only when it could not move the task: ErrTaskNoop when there is nothing to
// do (the task is terminal or at its desired state), ctx's error when ctx
// ended, and Shutdown's error (the caller should try again).
func Do(ctx context.Context, t *shoalpb.Task, ctlr Controller, now func() time.Time) (*shoalpb.TaskStatus, error) {
	if t == nil {
		return nil, errors.New("exec: Do of a nil task")
	}
	if ctlr == nil {
		return nil, fmt.Errorf("exec: Do of task %q without a controller", t.GetId())
	}
	if now == nil {
		now = time.Now
	}
	cur := t.GetStatus()
	if cur == nil {
		cur = &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_NEW}
	}
	state := cur.GetState()
	desired := t.GetDesiredState()

	unchanged := func(err error) (*shoalpb.TaskStatus, error) {
		return proto.Clone(cur).(*shoalpb.TaskStatus), err
	}
	to := func(s shoalpb.TaskState, msg string, err error) (*shoalpb.TaskStatus, error) {
		st := &shoalpb.TaskStatus{Timestamp: now().UnixNano(), State: s, Message: msg}
		if err != nil {
			st.Err = err.Error()
		}
		if s >= shoalpb.TaskState_TASK_STATE_STARTING {
			st.Container = containerStatus(ctx, ctlr, cur.GetContainer(), err)
		}
		return st, nil
	}

	if state >= shoalpb.TaskState_TASK_STATE_COMPLETE {
		return unchanged(ErrTaskNoop)
	}
	if desired >= shoalpb.TaskState_TASK_STATE_SHUTDOWN {
		if err := ctlr.Shutdown(ctx); err != nil && !errors.Is(err, ErrTaskNotFound) {
			return unchanged(fmt.Errorf("shutting down task %q: %w", t.GetId(), err))
		}
		return to(shoalpb.TaskState_TASK_STATE_SHUTDOWN, "shutdown", nil)
	}
	if state > desired || (state == desired && state != shoalpb.TaskState_TASK_STATE_RUNNING) {
		return unchanged(ErrTaskNoop)
	}

	switch {
	case state < shoalpb.TaskState_TASK_STATE_ACCEPTED:
		return to(shoalpb.TaskState_TASK_STATE_ACCEPTED, "accepted", nil)
	case state == shoalpb.TaskState_TASK_STATE_ACCEPTED:
		return to(shoalpb.TaskState_TASK_STATE_PREPARING, "preparing", nil)
	case state == shoalpb.TaskState_TASK_STATE_PREPARING:
		if err := ctlr.Prepare(ctx); err != nil {
			if ctx.Err() != nil {
				return unchanged(ctx.Err())
			}
			return to(shoalpb.TaskState_TASK_STATE_REJECTED, "preparing failed", err)
		}
		return to(shoalpb.TaskState_TASK_STATE_READY, "prepared", nil)
	case state == shoalpb.TaskState_TASK_STATE_READY:
		return to(shoalpb.TaskState_TASK_STATE_STARTING, "starting", nil)
	case state == shoalpb.TaskState_TASK_STATE_STARTING:
		if err := ctlr.Start(ctx); err != nil {
			if ctx.Err() != nil {
				return unchanged(ctx.Err())
			}
			return to(shoalpb.TaskState_TASK_STATE_FAILED, "starting failed", err)
		}
		if err := waitHealthy(ctx, t, ctlr); err != nil {
			if ctx.Err() != nil {
				return unchanged(ctx.Err())
			}
			stopUnhealthy(ctx, ctlr, err)
			return to(shoalpb.TaskState_TASK_STATE_FAILED, "health check failed", err)
		}
		return to(shoalpb.TaskState_TASK_STATE_RUNNING, "started", nil)
	case state == shoalpb.TaskState_TASK_STATE_RUNNING:
		err := ctlr.Wait(ctx)
		if err == nil {
			return to(shoalpb.TaskState_TASK_STATE_COMPLETE, "finished", nil)
		}
		if ctx.Err() != nil {
			return unchanged(ctx.Err())
		}
		stopUnhealthy(ctx, ctlr, err)
		return to(shoalpb.TaskState_TASK_STATE_FAILED, "failed", err)
	}
	return unchanged(fmt.Errorf("exec: task %q has unknown state %v", t.GetId(), state))
}

// stopUnhealthy stops a container whose health check failed, so a FAILED
// task never leaves a container running. It is best effort: the container
// is removed with its task in any case.
func stopUnhealthy(ctx context.Context, ctlr Controller, err error) {
	if errors.Is(err, ErrContainerUnhealthy) {
		_ = ctlr.Shutdown(ctx)
	}
}

// containerStatus asks ctlr for its container's status, falling back on
// prev; the exit code of a Wait error is kept when the runtime cannot say.
func containerStatus(ctx context.Context, ctlr Controller, prev *shoalpb.ContainerStatus, waitErr error) *shoalpb.ContainerStatus {
	var cs *shoalpb.ContainerStatus
	if s, ok := ctlr.(ContainerStatuser); ok {
		if got, err := s.ContainerStatus(ctx); err == nil {
			cs = got
		}
	}
	if cs == nil && prev != nil {
		cs = proto.Clone(prev).(*shoalpb.ContainerStatus)
	}
	var exit *ExitError
	if errors.As(waitErr, &exit) {
		if cs == nil {
			cs = &shoalpb.ContainerStatus{}
		}
		if cs.ExitCode == 0 {
			cs.ExitCode = int32(exit.Code)
		}
	}
	return cs
}

// waitHealthy returns nil once the started container is healthy or has no
// health check. It waits no longer than the check can take to decide.
func waitHealthy(ctx context.Context, t *shoalpb.Task, ctlr Controller) error {
	hw, canWait := ctlr.(HealthWaiter)
	h, canAsk := ctlr.(Healthy)
	if !canWait && !canAsk {
		return nil
	}
	limit := HealthDecisionTime(t.GetSpec().GetContainer().GetHealthcheck())
	hctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	var state HealthState
	var err error
	if canWait {
		state, err = hw.WaitHealth(hctx)
	} else {
		state, err = pollHealth(hctx, h)
	}
	if err != nil {
		if ctx.Err() == nil && hctx.Err() != nil {
			return fmt.Errorf("container did not become healthy within %v", limit)
		}
		return err
	}
	switch state {
	case HealthNone, HealthHealthy:
		return nil
	case HealthUnhealthy:
		return fmt.Errorf("%w: health check of task %q failed", ErrContainerUnhealthy, t.GetId())
	}
	return fmt.Errorf("container of task %q reported health %q before it became healthy", t.GetId(), state)
}

// pollHealth asks h until its check decides or ctx ends.
func pollHealth(ctx context.Context, h Healthy) (HealthState, error) {
	tick := time.NewTicker(healthPollPeriod)
	defer tick.Stop()
	for {
		s, err := h.Health(ctx)
		if err != nil || s != HealthStarting {
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-tick.C:
		}
	}
}

// HealthDecisionTime is the longest a health check configured by hc (nil:
// the image's, with Docker's defaults) can take to decide whether a started
// container is healthy: its start period, then retries+1 probes each taking
// up to interval plus timeout, plus one more interval and a second of slack.
func HealthDecisionTime(hc *shoalpb.HealthConfig) time.Duration {
	interval := time.Duration(hc.GetIntervalNs())
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	timeout := time.Duration(hc.GetTimeoutNs())
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	retries := int(hc.GetRetries())
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	start := max(time.Duration(hc.GetStartPeriodNs()), 0)
	return start + time.Duration(retries+1)*(interval+timeout) + interval + healthSlack
}
