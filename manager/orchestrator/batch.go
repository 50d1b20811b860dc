package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Batch collects the writes of one pass and proposes them in as few
// commands as fit under a size cap and an action cap.
type Batch struct {
	maxBytes, maxActions int
	cmds                 []*batchCmd
}

type batchCmd struct {
	cmd      shoalpb.Command
	size     int
	onCommit []func()
}

// NewBatch returns an empty batch whose commands stay under maxBytes and
// maxActions (MaxCommandBytes and MaxCommandActions if not positive). A
// group of actions larger than that goes alone in one command.
func NewBatch(maxBytes, maxActions int) *Batch {
	if maxBytes <= 0 {
		maxBytes = MaxCommandBytes
	}
	if maxActions <= 0 {
		maxActions = MaxCommandActions
	}
	return &Batch{maxBytes: maxBytes, maxActions: maxActions}
}

// NewBatch returns an empty batch with c's command caps.
func (c Config) NewBatch() *Batch { return NewBatch(c.MaxCommandBytes, c.MaxCommandActions) }

// commandOverhead is room left for the command's own framing.
const commandOverhead = 64

// Add queues actions that must land in the same command. onCommit, if not
// nil, runs once that command is applied.
func (b *Batch) Add(onCommit func(), actions ...*shoalpb.StoreAction) {
	if len(actions) == 0 {
		return
	}
	size := 0
	for _, a := range actions {
		n := proto.Size(a)
		// Each action is a length-delimited field: a tag byte plus a
		// varint length.
		size += n + 1 + sizeVarint(uint64(n))
	}
	var c *batchCmd
	if len(b.cmds) > 0 {
		c = b.cmds[len(b.cmds)-1]
	}
	if c == nil || (len(c.cmd.Actions) > 0 && (c.size+size+commandOverhead > b.maxBytes || len(c.cmd.Actions)+len(actions) > b.maxActions)) {
		c = &batchCmd{}
		b.cmds = append(b.cmds, c)
	}
	c.cmd.Actions = append(c.cmd.Actions, actions...)
	c.size += size
	if onCommit != nil {
		c.onCommit = append(c.onCommit, onCommit)
	}
}

func sizeVarint(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Len returns the number of queued actions.
func (b *Batch) Len() int {
	n := 0
	for _, c := range b.cmds {
		n += len(c.cmd.Actions)
	}
	return n
}

// CreateTask queues the creation of t.
func (b *Batch) CreateTask(t *shoalpb.Task, onCommit func()) {
	b.Add(onCommit, CreateTaskAction(t))
}

// SetDesiredState queues raising task id's desired state to s.
func (b *Batch) SetDesiredState(id string, s shoalpb.TaskState, now time.Time, onCommit func()) {
	b.Add(onCommit, DesiredStateAction(id, s, now))
}

// Shutdown queues setting t's desired state to SHUTDOWN.
func (b *Batch) Shutdown(t *shoalpb.Task, now time.Time) {
	b.SetDesiredState(t.Id, shoalpb.TaskState_TASK_STATE_SHUTDOWN, now, nil)
}

// RemoveTask queues deleting t.
func (b *Batch) RemoveTask(t *shoalpb.Task, onCommit func()) {
	b.Add(onCommit, &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_REMOVE, Target: &shoalpb.StoreAction_Task{Task: &shoalpb.Task{Id: t.Id}}})
}

// CreateTaskAction returns the action creating t.
func CreateTaskAction(t *shoalpb.Task) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Kind: shoalpb.ActionKind_ACTION_KIND_CREATE, Target: &shoalpb.StoreAction_Task{Task: t}}
}

// DesiredStateAction returns the action raising task id's desired state.
func DesiredStateAction(id string, s shoalpb.TaskState, now time.Time) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskDesiredStatePatch{
		TaskDesiredStatePatch: &shoalpb.TaskDesiredStatePatch{TaskId: id, DesiredState: s, UpdatedAt: now.UnixNano()},
	}}
}

// StatusAction returns the action recording st as task id's status.
func StatusAction(id string, st *shoalpb.TaskStatus) *shoalpb.StoreAction {
	return &shoalpb.StoreAction{Target: &shoalpb.StoreAction_TaskStatusPatch{
		TaskStatusPatch: &shoalpb.TaskStatusPatch{TaskId: id, Status: st},
	}}
}

// Commit proposes the queued commands in order and runs the callbacks of
// each one applied. A failed command does not stop the others; the errors
// are joined. The batch is empty afterwards.
func (b *Batch) Commit(ctx context.Context, p store.Proposer) error {
	cmds := b.cmds
	b.cmds = nil
	var errs []error
	for i, c := range cmds {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if _, err := p.Propose(ctx, &c.cmd); err != nil {
			errs = append(errs, fmt.Errorf("command %d of %d (%d actions): %w", i+1, len(cmds), len(c.cmd.Actions), err))
			continue
		}
		for _, f := range c.onCommit {
			f()
		}
	}
	return errors.Join(errs...)
}
