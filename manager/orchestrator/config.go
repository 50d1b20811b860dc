package orchestrator

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"time"

	"github.com/shoal-project/shoal/manager/constraint"
	"github.com/shoal-project/shoal/manager/store"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// NodeFilter reports whether node n satisfies the placement constraints of
// spec. The default is MatchConstraints.
type NodeFilter func(spec *shoalpb.TaskSpec, n *shoalpb.Node) (ok bool)

// MatchConstraints is the default NodeFilter: n must satisfy every
// placement constraint of spec (manager/constraint). A spec whose
// constraints do not parse matches no node; the control API refuses such
// specs, so this only guards against a store written by something else.
func MatchConstraints(spec *shoalpb.TaskSpec, n *shoalpb.Node) bool {
	exprs := spec.GetPlacement().GetConstraints()
	if len(exprs) == 0 {
		return true
	}
	cs, err := constraint.Parse(exprs)
	return err == nil && constraint.MatchAll(cs, n)
}

// Defaults applied by Config.WithDefaults.
const (
	// DefaultBatchDelay is how long events are coalesced before a pass.
	DefaultBatchDelay = 30 * time.Millisecond
	// DefaultRetryDelay is how long a loop waits after a failed write
	// before it reconciles everything again.
	DefaultRetryDelay = time.Second
	// MaxCommandBytes bounds the encoded size of one proposed command.
	MaxCommandBytes = 1 << 20
	// MaxCommandActions bounds the actions of one command, so one
	// command's events fit in a store watcher's buffer.
	MaxCommandActions = 1000
)

// Config is what every orchestration loop needs.
type Config struct {
	Store    *store.Store
	Proposer store.Proposer
	// Log receives warnings (failed writes) and debug traces; nil
	// discards them.
	Log *slog.Logger
	// Now is the clock for task timestamps and restart windows; nil
	// means time.Now.
	Now func() time.Time
	// After delivers a value once d has passed on the clock Now reads; it
	// times restart delays. nil means time.After.
	After func(d time.Duration) <-chan time.Time
	// NewID makes task IDs; nil means 25 random base-36 characters.
	NewID func() string
	// NodeFilter decides placement constraints; nil means
	// MatchConstraints.
	NodeFilter NodeFilter
	// BatchDelay coalesces events before a pass (real time: it changes
	// how writes are batched, never what is decided). Zero means
	// DefaultBatchDelay.
	BatchDelay time.Duration
	// RetryDelay follows a failed write (real time). Zero means
	// DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxCommandBytes caps one command; zero means MaxCommandBytes.
	MaxCommandBytes int
	// MaxCommandActions caps one command; zero means MaxCommandActions.
	MaxCommandActions int
}

// WithDefaults checks c and fills in its optional fields.
func (c Config) WithDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("orchestrator: config has no store")
	}
	if c.Proposer == nil {
		return c, errors.New("orchestrator: config has no proposer")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.NewID == nil {
		c.NewID = randomID
	}
	if c.NodeFilter == nil {
		c.NodeFilter = MatchConstraints
	}
	if c.BatchDelay <= 0 {
		c.BatchDelay = DefaultBatchDelay
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxCommandBytes <= 0 {
		c.MaxCommandBytes = MaxCommandBytes
	}
	if c.MaxCommandActions <= 0 {
		c.MaxCommandActions = MaxCommandActions
	}
	return c, nil
}

var idLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func randomID() string {
	n, err := rand.Int(rand.Reader, idLimit)
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic("orchestrator: read random bytes: " + err.Error())
	}
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s[:25]
}
