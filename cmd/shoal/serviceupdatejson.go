package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// The update and rollback parts of `service inspect`, in docker's shape:
// UpdateConfig and RollbackConfig in the spec, UpdateStatus in the service,
// with docker's words for states, actions and orders.

type updateConfigJSON struct {
	Parallelism     uint64
	Delay           int64  `json:",omitempty"`
	FailureAction   string `json:",omitempty"`
	Monitor         int64  `json:",omitempty"`
	MaxFailureRatio float32
	Order           string
	// TaskTimeout is shoal's own: how long a new task may take to run.
	TaskTimeout *int64 `json:",omitempty"`
}

type updateStatusJSON struct {
	// State is docker's word: updating, paused, completed,
	// rollback_started, rollback_paused or rollback_completed.
	State       string     `json:",omitempty"`
	StartedAt   *time.Time `json:",omitempty"`
	CompletedAt *time.Time `json:",omitempty"`
	Message     string     `json:",omitempty"`
}

func newUpdateConfigJSON(c *shoalpb.UpdateConfig) *updateConfigJSON {
	if c == nil {
		return nil
	}
	return &updateConfigJSON{
		Parallelism:     c.GetParallelism(),
		Delay:           c.GetDelayNs(),
		FailureAction:   enumWord(c.GetFailureAction().String(), "FAILURE_ACTION_"),
		Monitor:         c.GetMonitorNs(),
		MaxFailureRatio: c.GetMaxFailureRatio(),
		Order:           strings.ReplaceAll(enumWord(c.GetOrder().String(), "ORDER_"), "_", "-"),
		TaskTimeout:     c.TaskTimeoutNs,
	}
}

func updateStateWord(s shoalpb.UpdateStatus_State) string {
	if s == shoalpb.UpdateStatus_STATE_UNKNOWN {
		return ""
	}
	return enumWord(s.String(), "STATE_")
}

func newUpdateStatusJSON(st *shoalpb.UpdateStatus) *updateStatusJSON {
	if st == nil {
		return nil
	}
	v := &updateStatusJSON{State: updateStateWord(st.GetState()), Message: st.GetMessage()}
	if st.GetStartedAt() != 0 {
		t := unixNano(st.GetStartedAt())
		v.StartedAt = &t
	}
	if st.GetCompletedAt() != 0 {
		t := unixNano(st.GetCompletedAt())
		v.CompletedAt = &t
	}
	return v
}

// prettyNow is the clock --pretty measures ages with; tests set it.
var prettyNow = time.Now

// writeUpdateStatusPretty words the update status as docker's --pretty.
func writeUpdateStatusPretty(st *updateStatusJSON, now time.Time, kv func(string, any), line func(string)) {
	if st == nil {
		return
	}
	ago := func(t time.Time) string { return humanDuration(now.Sub(t)) + " ago" }
	line("UpdateStatus:")
	kv(" State", st.State)
	if st.StartedAt != nil {
		kv(" Started", ago(*st.StartedAt))
	}
	if st.CompletedAt != nil {
		kv(" Completed", ago(*st.CompletedAt))
	}
	kv(" Message", st.Message)
}

// writeUpdateConfigsPretty words the update and rollback configs as
// docker's --pretty.
func writeUpdateConfigsPretty(spec serviceSpecJSON, kv func(string, any), line func(string)) {
	for _, c := range []struct {
		title, order string
		cfg          *updateConfigJSON
	}{{"UpdateConfig:", " Update order", spec.UpdateConfig}, {"RollbackConfig:", " Rollback order", spec.RollbackConfig}} {
		u := c.cfg
		if u == nil {
			continue
		}
		line(c.title)
		kv(" Parallelism", u.Parallelism)
		if u.Delay != 0 {
			kv(" Delay", time.Duration(u.Delay))
		}
		kv(" On failure", u.FailureAction)
		if u.Monitor != 0 {
			kv(" Monitoring Period", time.Duration(u.Monitor))
		}
		kv(" Max failure ratio", fmt.Sprint(u.MaxFailureRatio))
		kv(c.order, u.Order)
		if u.TaskTimeout != nil {
			kv(" Task timeout", time.Duration(*u.TaskTimeout))
		}
	}
}
