package store

import (
	"context"
	"sync"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Proposer replicates a command and applies it to the store, returning the
// index it was applied at or the error the store's Apply returned.
type Proposer interface {
	Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error)
}

// LocalProposer applies commands straight to a store, for tests of the
// components above the store that need no replication.
type LocalProposer struct {
	Store *Store
	mu    sync.Mutex
	index uint64
}

// Propose applies cmd at the next index.
func (p *LocalProposer) Propose(ctx context.Context, cmd *shoalpb.Command) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index = max(p.index, p.Store.AppliedIndex()) + 1
	return p.index, p.Store.Apply(p.index, cmd)
}
