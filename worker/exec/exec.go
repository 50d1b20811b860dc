package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Executor makes controllers for tasks and describes the node.
type Executor interface {
	// Describe reports the node's platform, resources and engine. The
	// hostname is left empty: the caller knows it better than the runtime.
	Describe(ctx context.Context) (*shoalpb.NodeDescription, error)
	// Controller returns the controller of one task. It checks the task's
	// spec but touches no runtime state; an invalid spec is an error.
	Controller(t *shoalpb.Task) (Controller, error)
}

// Controller runs one task's container. Every method is idempotent: calling
// it again after it succeeded does nothing more, so an agent that restarts
// may replay the steps of a task.
type Controller interface {
	// Prepare makes sure the image is present (it never pulls: a missing
	// image is ErrImageNotFound) and creates the container without starting
	// it. A container of the same task that already exists is adopted.
	Prepare(ctx context.Context) error
	// Start starts the prepared container. Starting a running container, or
	// one that already ran and exited, does nothing.
	Start(ctx context.Context) error
	// Wait blocks until the container exits or ctx ends. It returns nil for
	// exit code 0 and an *ExitError otherwise. A runtime that watches health
	// also returns ErrContainerUnhealthy when the container turns unhealthy.
	Wait(ctx context.Context) error
	// Shutdown stops the container with the spec's stop signal, and kills
	// it once the spec's grace period (default 10 s) has passed.
	Shutdown(ctx context.Context) error
	// Terminate kills the container at once.
	Terminate(ctx context.Context) error
	// Remove removes the container, killing it if it runs, and its
	// anonymous volumes. Removing a missing container is no error.
	Remove(ctx context.Context) error
	// Close releases what the controller holds; the container is left as
	// it is.
	Close() error
}

// Log streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogOptions selects the log lines ControllerLogs sends.
type LogOptions struct {
	// Follow keeps sending lines until the container exits or ctx ends.
	Follow bool
	// Tail is how many of the last lines to send first: -1 for all, 0 for
	// none (with Follow: only new lines).
	Tail int
	// Timestamps fills LogLine.Time.
	Timestamps bool
	// Since skips lines written before it (zero: no limit).
	Since time.Time
}

// LogLine is one line a container wrote.
type LogLine struct {
	// Stream is StreamStdout or StreamStderr.
	Stream string
	// Time is when the runtime received the line; zero unless
	// LogOptions.Timestamps was set.
	Time time.Time
	// Data is the line without its trailing newline.
	Data []byte
}

// ControllerLogs is implemented by controllers that can read the
// container's output. Logs calls fn for every line in order and stops at
// fn's first error, which it returns.
type ControllerLogs interface {
	Logs(ctx context.Context, opts LogOptions, fn func(LogLine) error) error
}

// ContainerStatuser is implemented by controllers that can report the
// container's ID, process and exit code.
type ContainerStatuser interface {
	ContainerStatus(ctx context.Context) (*shoalpb.ContainerStatus, error)
}

// HealthState is the result of a container's health check.
type HealthState string

// Health states.
const (
	// HealthNone: the container has no health check.
	HealthNone HealthState = "none"
	// HealthStarting: the check has not passed yet.
	HealthStarting HealthState = "starting"
	HealthHealthy  HealthState = "healthy"
	// HealthUnhealthy: the check failed its retries.
	HealthUnhealthy HealthState = "unhealthy"
)

// Healthy is implemented by controllers that report the container's health.
type Healthy interface {
	Health(ctx context.Context) (HealthState, error)
}

// HealthWaiter is implemented by controllers that can wait for a health
// check to decide. WaitHealth returns once the state is HealthNone,
// HealthHealthy or HealthUnhealthy; if the container exits first it returns
// an error saying so.
type HealthWaiter interface {
	WaitHealth(ctx context.Context) (HealthState, error)
}

// Errors shared by runtimes; match them with errors.Is, as runtimes wrap
// them with the name of what was not found.
var (
	// ErrImageNotFound: the task's image is not on the node.
	ErrImageNotFound = errors.New("image not found")
	// ErrTaskNotFound: the task's container does not exist.
	ErrTaskNotFound = errors.New("task container not found")
	// ErrContainerNotStarted: Wait was called on a container never started.
	ErrContainerNotStarted = errors.New("container not started")
	// ErrContainerUnhealthy: the container's health check failed.
	ErrContainerUnhealthy = errors.New("container unhealthy")
	// ErrTaskNoop: Do had nothing to do, as the task is terminal or has
	// reached its desired state.
	ErrTaskNoop = errors.New("no change to the task")
)

// ExitError is a container's exit with a non-zero code.
type ExitError struct {
	Code int
	// Cause says more when the runtime knows it (killed for lack of
	// memory, say); it may be nil.
	Cause error
}

func (e *ExitError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("exit code %d: %v", e.Code, e.Cause)
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Cause }
