// Package docker owns the Docker Engine runtime of the worker: an
// exec.Executor whose controllers run each task as one container of the
// local engine, named <service>.<slot or node ID>.<task ID> and labelled with
// the node, task and service it belongs to. It maps a task's ContainerSpec
// onto the engine's container configuration, never pulls images (a missing
// image is exec.ErrImageNotFound), adopts the containers of its own tasks
// after a restart, and lists and removes the containers it owns on this node.
//
// A task attached to overlay networks runs in two containers: a sandbox
// (image SandboxImage, made on the engine when first needed) that holds the
// task's network namespace, plumbed by the node's Network before the task
// starts, and the task's container, which joins that namespace.
//
// It only ever touches containers labelled with its node's ID: several nodes
// may share one engine.
//
// It must not import manager/, raftstore/ or node/.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// Labels set on every container the executor creates.
const (
	LabelNodeID      = "shoal.node.id"
	LabelTaskID      = "shoal.task.id"
	LabelServiceID   = "shoal.service.id"
	LabelServiceName = "shoal.service.name"
)

// API is the part of the Docker Engine client the executor uses;
// *client.Client implements it.
type API interface {
	Info(ctx context.Context) (system.Info, error)
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerInspect(ctx context.Context, container string) (container.InspectResponse, error)
	ContainerStart(ctx context.Context, container string, options container.StartOptions) error
	ContainerStop(ctx context.Context, container string, options container.StopOptions) error
	ContainerKill(ctx context.Context, container, signal string) error
	ContainerRemove(ctx context.Context, container string, options container.RemoveOptions) error
	ContainerWait(ctx context.Context, container string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerLogs(ctx context.Context, container string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

var _ API = (*client.Client)(nil)

// DefaultNetworkMode gives containers no Docker networking: a task's overlay
// attachments are made outside Docker, in the container's own network
// namespace.
const DefaultNetworkMode = "none"

// Executor runs tasks as containers of one Docker Engine.
type Executor struct {
	api      API
	nodeID   string
	nodeName string

	// NetworkMode is the network mode of the containers the executor's
	// controllers create (DefaultNetworkMode unless changed). Set it before
	// the first Controller call.
	NetworkMode string
	// Network plumbs tasks attached to overlay networks; without it such
	// tasks are rejected. Set it before the first Controller call.
	Network Network

	sandboxImage sandboxImageOnce
}

var _ exec.Executor = (*Executor)(nil)

// New returns an executor for the node nodeID (named nodeName in errors)
// that runs containers through api, typically a client made with
// client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()).
func New(api API, nodeID, nodeName string) *Executor {
	return &Executor{api: api, nodeID: nodeID, nodeName: nodeName, NetworkMode: DefaultNetworkMode}
}

// Describe reports the engine's platform, CPUs, memory, version and labels.
func (e *Executor) Describe(ctx context.Context) (*shoalpb.NodeDescription, error) {
	info, err := e.api.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker info: %w", err)
	}
	d := &shoalpb.NodeDescription{
		Platform:      &shoalpb.Platform{Os: info.OSType, Architecture: info.Architecture},
		Resources:     &shoalpb.Resources{NanoCpus: int64(info.NCPU) * 1e9, MemoryBytes: info.MemTotal},
		EngineVersion: info.ServerVersion,
	}
	for _, l := range info.Labels {
		k, v, _ := strings.Cut(l, "=")
		if d.EngineLabels == nil {
			d.EngineLabels = map[string]string{}
		}
		d.EngineLabels[k] = v
	}
	return d, nil
}

// Controller returns the controller of t's container. It checks t's spec and
// maps it onto the container's configuration; an invalid spec is an error
// naming the bad value.
func (e *Executor) Controller(t *shoalpb.Task) (exec.Controller, error) {
	if e.nodeID == "" {
		return nil, errors.New("docker executor without a node ID")
	}
	cfg, err := e.containerConfig(t)
	if err != nil {
		return nil, err
	}
	c := &Controller{e: e, taskID: t.GetId(), task: t, cfg: cfg}
	if len(t.GetNetworks()) > 0 {
		if c.sandbox, err = e.sandboxConfig(t, cfg); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ContainerRef names one container owned by this node.
type ContainerRef struct {
	ID string
	// Name is without Docker's leading slash.
	Name      string
	TaskID    string
	ServiceID string
	// State is the engine's: created, running, exited, ...
	State string
}

// ListOwned lists the containers, running or not, labelled with this node's
// ID.
func (e *Executor) ListOwned(ctx context.Context) ([]ContainerRef, error) {
	if e.nodeID == "" {
		return nil, errors.New("docker executor without a node ID")
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelNodeID+"="+e.nodeID)),
	})
	if err != nil {
		return nil, fmt.Errorf("listing containers of node %q: %w", e.nodeID, err)
	}
	refs := make([]ContainerRef, 0, len(list))
	for _, c := range list {
		// The engine filtered already; checking again keeps a filter the
		// engine ignored from handing out another node's containers.
		if c.Labels[LabelNodeID] != e.nodeID {
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		refs = append(refs, ContainerRef{
			ID:        c.ID,
			Name:      name,
			TaskID:    c.Labels[LabelTaskID],
			ServiceID: c.Labels[LabelServiceID],
			State:     c.State,
		})
	}
	return refs, nil
}

// RemoveOrphans removes, killing them if they run, this node's containers
// whose task is not in keep, and returns them. Containers without this
// node's label are never touched. It goes on after a failed removal and
// returns the first error.
func (e *Executor) RemoveOrphans(ctx context.Context, keep map[string]bool) ([]ContainerRef, error) {
	refs, err := e.ListOwned(ctx)
	if err != nil {
		return nil, err
	}
	var removed []ContainerRef
	var first error
	for _, r := range refs {
		if keep[r.TaskID] {
			continue
		}
		err := e.api.ContainerRemove(ctx, r.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			if first == nil {
				first = fmt.Errorf("removing orphan container %s (%s) of task %q: %w", r.Name, r.ID, r.TaskID, err)
			}
			continue
		}
		removed = append(removed, r)
	}
	return removed, first
}
