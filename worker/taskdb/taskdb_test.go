package taskdb

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func TestRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	task := &shoalpb.Task{Id: "t1", ServiceId: "s1", Slot: 2, Spec: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "img:1"}}}
	if err := db.PutTask(task); err != nil {
		t.Fatal(err)
	}
	if err := db.PutStatus("t1", &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING, Container: &shoalpb.ContainerStatus{ContainerId: "c1"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutStatus("missing", &shoalpb.TaskStatus{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("status of an unknown task: %v", err)
	}
	if err := db.PutTask(&shoalpb.Task{Id: "t2"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAssigned("t2", false); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec, err := db.Get("t1")
	if err != nil || rec == nil {
		t.Fatalf("Get(t1) = %v, %v", rec, err)
	}
	if rec.Task.Spec.Container.Image != "img:1" || rec.Task.Slot != 2 || !rec.Assigned || rec.Status.Container.ContainerId != "c1" {
		t.Fatalf("record after reopen: %+v", rec)
	}
	all, err := db.All()
	if err != nil || len(all) != 2 {
		t.Fatalf("All = %d records, %v", len(all), err)
	}
	for _, r := range all {
		if r.Task.Id == "t2" && (r.Assigned || r.Status != nil) {
			t.Fatalf("t2 = %+v, want unassigned with no status", r)
		}
	}
	if err := db.Delete("t2"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("t2"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if r, _ := db.Get("t2"); r != nil {
		t.Fatalf("deleted task still there: %+v", r)
	}
}

func TestCorruptFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	garbage := []byte(strings.Repeat("not a database ", 400))
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err == nil {
		db.Close()
		t.Fatal("opened a corrupt file")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(garbage) {
		t.Fatal("the corrupt file was changed")
	}
}

// TestPutTasksAndConcurrentStatuses: PutTasks writes all tasks or none,
// and status writes made at once by many runners all land (sharing
// commits), each readable after it returned, with an unknown task's
// error reaching only its own caller.
func TestPutTasksAndConcurrentStatuses(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "tasks.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutTasks([]*shoalpb.Task{{Id: "a"}, {Id: ""}}); err == nil {
		t.Fatal("a task without ID was accepted")
	}
	if all, _ := db.All(); len(all) != 0 {
		t.Fatalf("a refused PutTasks wrote %d records", len(all))
	}
	const n = 50
	var tasks []*shoalpb.Task
	for i := range n {
		tasks = append(tasks, &shoalpb.Task{Id: fmt.Sprintf("t%02d", i), Slot: uint64(i + 1)})
	}
	if err := db.PutTasks(tasks); err != nil {
		t.Fatal(err)
	}
	// Each commit writes at least one page: separate commits would write
	// at least n.
	pageWrites := func() int64 { st := db.db.Stats(); return st.TxStats.GetWrite() }
	before := pageWrites()
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := range n + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "missing"
			if i < n {
				id = tasks[i].Id
			}
			errs[i] = db.PutStatus(id, &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_RUNNING, Message: id})
			if errs[i] == nil {
				if rec, err := db.Get(id); err != nil || rec.Status.GetMessage() != id {
					errs[i] = fmt.Errorf("read back %s: %+v, %v", id, rec, err)
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("status of %s: %v", tasks[i].Id, err)
		}
	}
	if err := errs[n]; err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("status of an unknown task: %v", err)
	}
	all, err := db.All()
	if err != nil || len(all) != n {
		t.Fatalf("All = %d records, %v", len(all), err)
	}
	for _, r := range all {
		if r.Status.GetMessage() != r.Task.Id || !r.Assigned {
			t.Errorf("record %s: %+v", r.Task.Id, r)
		}
	}
	if w := pageWrites() - before; w >= n {
		t.Errorf("%d concurrent status writes wrote %d pages: they did not share commits", n, w)
	}
}
