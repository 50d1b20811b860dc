package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/shoal-project/shoal/proto/shoalpb"
	"github.com/shoal-project/shoal/worker/exec"
)

// The engine tests share one client and one image, made by TestMain from
// testdata/helper and removed at the end. Every container they create is
// labelled labelTestRun=runID and owned by a node ID of its test alone.
const labelTestRun = "shoal.test.run"

var (
	cli       *client.Client
	engineErr error // why the engine cannot be used; nil when it can
	runID     string
	testImage string
)

func TestMain(m *testing.M) {
	runID = randomID()
	testImage = "shoal-exec-test:" + runID
	cleanup, err := setUpEngine()
	engineErr = err
	if err != nil && os.Getenv("CI") != "" {
		fmt.Fprintln(os.Stderr, "docker engine tests cannot run:", err)
		os.Exit(1)
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	os.Exit(code)
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// setUpEngine connects to the engine and builds the test image; cleanup
// removes what the run left.
func setUpEngine() (cleanup func(), err error) {
	cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	dir, err := os.MkdirTemp("", "shoal-exec-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "app")
	if err := buildHelper(ctx, bin); err != nil {
		return nil, err
	}
	_, sbErr := cli.ImageInspect(ctx, SandboxImage)
	cleanup = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		removeRunContainers(ctx)
		_, _ = cli.ImageRemove(ctx, testImage, image.RemoveOptions{Force: true, PruneChildren: true})
		if cerrdefs.IsNotFound(sbErr) {
			// The sandbox image did not exist before: the run made it.
			_, _ = cli.ImageRemove(ctx, SandboxImage, image.RemoveOptions{PruneChildren: true})
		}
	}
	if err := buildImage(ctx, bin); err != nil {
		cleanup()
		return nil, err
	}
	return cleanup, nil
}

// buildHelper compiles testdata/helper into a static binary.
func buildHelper(ctx context.Context, out string) error {
	goBin, err := osexec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := osexec.CommandContext(ctx, goBin, "build", "-o", out, "./testdata/helper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the test helper: %v\n%s", err, b)
	}
	return nil
}

// buildImage builds testImage FROM scratch with the helper as /app.
func buildImage(ctx context.Context, bin string) error {
	app, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n")},
		{"app", 0o755, app},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{testImage},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{labelTestRun: runID},
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("building image %s: %w", testImage, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading the build of %s: %w", testImage, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("building image %s: %s", testImage, msg.Error)
		}
	}
	_, err = cli.ImageInspect(ctx, testImage)
	return err
}

// removeRunContainers removes every container of this run, whatever its
// node: the last guard against a test's cleanup not running.
func removeRunContainers(ctx context.Context) {
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", labelTestRun+"="+runID)),
	})
	if err != nil {
		return
	}
	for _, c := range list {
		if c.Labels[labelTestRun] == runID {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
}

// needEngine skips t when there is no engine to test against.
func needEngine(t *testing.T) {
	t.Helper()
	if engineErr != nil {
		t.Skip("no docker engine:", engineErr)
	}
}

// newExecutor returns an executor of a node of t alone, whose containers
// are all removed when t ends.
func newExecutor(t *testing.T) *Executor {
	t.Helper()
	needEngine(t)
	t.Parallel()
	id := "node-" + randomID()
	e := New(cli, id, "name-of-"+id)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.RemoveOrphans(ctx, nil); err != nil {
			t.Errorf("cleanup of node %s: %v", id, err)
		}
	})
	return e
}

// newTask returns a task running the helper with the given steps.
func newTask(steps ...string) *shoalpb.Task {
	return &shoalpb.Task{
		Id:          "t" + randomID(),
		ServiceId:   "svc" + runID,
		ServiceName: "exectest",
		Slot:        1,
		Spec: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{
			Image:  testImage,
			Args:   steps,
			Labels: map[string]string{labelTestRun: runID},
		}},
		Status:       &shoalpb.TaskStatus{State: shoalpb.TaskState_TASK_STATE_ASSIGNED},
		DesiredState: shoalpb.TaskState_TASK_STATE_RUNNING,
	}
}

func controller(t *testing.T, e *Executor, tk *shoalpb.Task) *Controller {
	t.Helper()
	c, err := e.Controller(tk)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Controller)
}

// testCtx bounds one engine test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// doUntil runs exec.Do until the task reaches state or is terminal.
func doUntil(t *testing.T, ctx context.Context, tk *shoalpb.Task, c exec.Controller, state shoalpb.TaskState) *shoalpb.TaskStatus {
	t.Helper()
	for range 10 {
		st, err := exec.Do(ctx, tk, c, time.Now)
		if err != nil {
			t.Fatalf("Do from %v: %v", tk.GetStatus().GetState(), err)
		}
		tk.Status = st
		if st.State == state || st.State >= shoalpb.TaskState_TASK_STATE_COMPLETE {
			return st
		}
	}
	t.Fatalf("task stuck at %v", tk.Status)
	return nil
}

func inspect(t *testing.T, ctx context.Context, c *Controller) container.InspectResponse {
	t.Helper()
	info, err := c.inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitForLine follows c's logs until a line contains text.
func waitForLine(t *testing.T, ctx context.Context, c *Controller, text string) {
	t.Helper()
	errFound := fmt.Errorf("found")
	err := c.Logs(ctx, exec.LogOptions{Follow: true, Tail: -1}, func(l exec.LogLine) error {
		if bytes.Contains(l.Data, []byte(text)) {
			return errFound
		}
		return nil
	})
	if err != errFound {
		t.Fatalf("container %s never wrote %q (logs: %v)", c.Name(), text, err)
	}
}
