package taskdb

import (
	"os"
	"path/filepath"
	"strings"
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
