// Package sim owns a simulated exec.Executor: its containers live in memory
// and move through their states at once or after configurable delays, with
// behaviour chosen per image name (see ImageFor). It is for tests and scale
// benchmarks, never a node's default runtime, and is safe for thousands of
// concurrent tasks.
//
// It must not import manager/, raftstore/ or node/.
package sim

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// Image is how the containers of one image behave.
type Image struct {
	// Missing makes Prepare fail with exec.ErrImageNotFound.
	Missing bool
	// Exits makes a started container exit by itself with ExitCode after
	// RunFor; otherwise it runs until it is stopped.
	Exits    bool
	RunFor   time.Duration
	ExitCode int
	// Health is the verdict of the container's health check, reached
	// Config.HealthDelay after it starts; "" or exec.HealthNone: no check.
	Health exec.HealthState
	// IgnoreStop makes Shutdown wait the task's whole grace period and then
	// kill the container (exit code 137), like a program that ignores its
	// stop signal.
	IgnoreStop bool
}

// ImageFor returns the behaviour of an image from its name:
//
//	sim/missing...     not on the node (exec.ErrImageNotFound)
//	sim/exit:N         exits with code N as soon as it starts
//	sim/sleep:DUR      runs for DUR (a time.ParseDuration string), exits 0
//	sim/healthy        runs, its health check passes
//	sim/unhealthy      runs, its health check fails
//	sim/ignore-stop    runs, and ignores its stop signal
//	anything else      runs until it is stopped
//
// An unparsable number or duration is an error naming it.
func ImageFor(name string) (Image, error) {
	repo, tag, _ := strings.Cut(name, ":")
	switch {
	case strings.HasPrefix(name, "sim/missing"):
		return Image{Missing: true}, nil
	case repo == "sim/exit":
		code, err := strconv.Atoi(tag)
		if err != nil || code < 0 || code > 255 {
			return Image{}, fmt.Errorf("sim image %q: exit code %q is not a number from 0 to 255", name, tag)
		}
		return Image{Exits: true, ExitCode: code}, nil
	case repo == "sim/sleep":
		d, err := time.ParseDuration(tag)
		if err != nil || d < 0 {
			return Image{}, fmt.Errorf("sim image %q: %q is not a duration", name, tag)
		}
		return Image{Exits: true, RunFor: d}, nil
	case repo == "sim/healthy":
		return Image{Health: exec.HealthHealthy}, nil
	case repo == "sim/unhealthy":
		return Image{Health: exec.HealthUnhealthy}, nil
	case repo == "sim/ignore-stop":
		return Image{IgnoreStop: true}, nil
	}
	return Image{}, nil
}

// Config sets the simulated node up. The zero value is a node where every
// step happens at once.
type Config struct {
	NodeID, NodeName string
	// Images overrides ImageFor for the images it names.
	Images map[string]Image
	// PrepareDelay, StartDelay and StopDelay are how long Prepare, Start
	// and a stop (Shutdown of a container that obeys it) take.
	PrepareDelay, StartDelay, StopDelay time.Duration
	// HealthDelay is how long a health check takes to reach its verdict.
	HealthDelay time.Duration
	// Description is what Describe returns (nil: 4 CPUs, 8 GiB, this
	// process's platform, engine "sim").
	Description *shoalpb.NodeDescription
}

// Executor is a simulated runtime holding its containers in memory, one per
// task ID.
type Executor struct {
	cfg Config

	mu         sync.Mutex
	containers map[string]*simContainer
	nextPid    int32
}

var _ exec.Executor = (*Executor)(nil)

// New returns a simulated executor.
func New(cfg Config) *Executor {
	return &Executor{cfg: cfg, containers: map[string]*simContainer{}, nextPid: 100}
}

// Describe returns Config.Description or a default one.
func (e *Executor) Describe(ctx context.Context) (*shoalpb.NodeDescription, error) {
	if d := e.cfg.Description; d != nil {
		return d, nil
	}
	return &shoalpb.NodeDescription{
		Platform:      &shoalpb.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources:     &shoalpb.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30},
		EngineVersion: "sim",
	}, nil
}

// Controller returns the controller of t. Controllers of the same task ID
// share its container, as a runtime's would after an agent restart.
func (e *Executor) Controller(t *shoalpb.Task) (exec.Controller, error) {
	if t.GetId() == "" {
		return nil, fmt.Errorf("task without an ID")
	}
	spec := t.GetSpec().GetContainer()
	if spec.GetImage() == "" {
		return nil, fmt.Errorf("task %q has no image", t.GetId())
	}
	img, ok := e.cfg.Images[spec.GetImage()]
	if !ok {
		var err error
		if img, err = ImageFor(spec.GetImage()); err != nil {
			return nil, fmt.Errorf("task %q: %w", t.GetId(), err)
		}
	}
	grace := 10 * time.Second
	if spec.StopGracePeriodNs != nil {
		grace = time.Duration(spec.GetStopGracePeriodNs())
		if grace < 0 {
			return nil, fmt.Errorf("task %q: stop grace period %v is negative", t.GetId(), grace)
		}
	}
	return &Controller{e: e, taskID: t.GetId(), image: spec.GetImage(), img: img, grace: grace}, nil
}

// Running returns how many containers run now.
func (e *Executor) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.containers {
		c.mu.Lock()
		if c.state == stateRunning {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Containers returns how many containers exist, whatever their state.
func (e *Executor) Containers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.containers)
}

// Exit makes task taskID's running container exit with code, as if its
// program had ended or crashed.
func (e *Executor) Exit(taskID string, code int) error {
	c := e.lookup(taskID)
	if c == nil {
		return fmt.Errorf("%w: sim container of task %q", exec.ErrTaskNotFound, taskID)
	}
	if !c.exit(code) {
		return fmt.Errorf("sim container of task %q is not running", taskID)
	}
	return nil
}

func (e *Executor) lookup(taskID string) *simContainer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.containers[taskID]
}

// create returns task taskID's container, making it if there is none.
func (e *Executor) create(taskID string, img Image) *simContainer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[taskID]; ok {
		return c
	}
	e.nextPid++
	c := &simContainer{
		id:      "sim-" + taskID,
		pid:     e.nextPid,
		img:     img,
		exited:  make(chan struct{}),
		decided: make(chan struct{}),
		health:  exec.HealthNone,
	}
	if img.Health != "" && img.Health != exec.HealthNone {
		c.health = exec.HealthStarting
	}
	e.containers[taskID] = c
	return c
}

func (e *Executor) remove(taskID string) {
	e.mu.Lock()
	c := e.containers[taskID]
	delete(e.containers, taskID)
	e.mu.Unlock()
	if c != nil {
		c.exit(137)
	}
}

// delay waits d, a simulated duration, or until ctx ends.
func delay(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
