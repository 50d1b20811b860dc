// Package orchestratortest holds test helpers for the orchestration loops:
// a clock tests advance by hand, a proposer that counts commands, and an
// environment wrapping a store with no Raft. Test code only; like the
// loops, it must not import raft, gRPC, worker/, node/ or raftstore/.
package orchestratortest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Clock is a fake clock: Now stays put until Advance moves it, and the
// channels After returns fire when Advance passes their deadline.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock reaches now+d;
// at once if d is not positive.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires the timers due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// Pending returns how many timers wait for the clock.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// IDs makes predictable IDs: prefix-1, prefix-2, ...
type IDs struct {
	Prefix string
	n      atomic.Int64
}

// New returns the next ID.
func (g *IDs) New() string { return fmt.Sprintf("%s-%d", g.Prefix, g.n.Add(1)) }

// CountingProposer applies commands through an inner proposer, one at a
// time, and counts the commands applied, with their number of actions.
type CountingProposer struct {
	Inner store.Proposer

	mu       sync.Mutex
	sizes    []int
	failNext int
	failErr  error
	failures int
}

// Propose applies cmd, unless FailNext asked for a failure. It holds its
// lock while applying, so a test that saw a command's effect in the store
// also sees it counted.
func (p *CountingProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failNext > 0 {
		p.failNext--
		p.failures++
		return 0, p.failErr
	}
	idx, err := p.Inner.Propose(ctx, cmd)
	if err == nil {
		p.sizes = append(p.sizes, len(cmd.Actions))
	}
	return idx, err
}

// FailNext makes the next n calls of Propose fail with err.
func (p *CountingProposer) FailNext(n int, err error) {
	p.mu.Lock()
	p.failNext, p.failErr = n, err
	p.mu.Unlock()
}

// Failures returns how many calls FailNext made fail.
func (p *CountingProposer) Failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failures
}

// Commands returns the number of actions of every command applied so far.
func (p *CountingProposer) Commands() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.sizes...)
}

// Reset forgets the commands counted so far.
func (p *CountingProposer) Reset() {
	p.mu.Lock()
	p.sizes = nil
	p.mu.Unlock()
}
