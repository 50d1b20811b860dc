package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/integration/harness"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// composeFile writes a compose file with the test image in place of IMG.
func composeFile(t *testing.T, dir, name, img, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "IMG", img)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// stackCLI runs a stack command and returns stdout and stderr, failing the
// test if it does not succeed.
func stackCLI(t *testing.T, h *harness.Host, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, stderr, err := h.CLI(ctx, append([]string{"stack"}, args...)...)
	if err != nil {
		t.Fatalf("shoal stack %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr)
	}
	return out, stderr
}

func wantLines(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l+"\n") {
			t.Fatalf("%s: no line %q in:\n%s", what, l, out)
		}
	}
}

// containersOf returns the running containers of a service: ID to the
// container's labels and environment.
type containerInfo struct {
	labels map[string]string
	env    []string
}

func containersOf(t *testing.T, service string) map[string]containerInfo {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--no-trunc", "--filter", "label=shoal.service.name="+service).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	ids := strings.Fields(string(out))
	res := map[string]containerInfo{}
	if len(ids) == 0 {
		return res
	}
	raw, err := exec.Command("docker", append([]string{"inspect"}, ids...)...).Output()
	if err != nil {
		// A container may be gone between ps and inspect.
		return containersOf(t, service)
	}
	var infos []struct {
		ID     string `json:"Id"`
		Config struct {
			Labels map[string]string
			Env    []string
		}
	}
	if err := json.Unmarshal(raw, &infos); err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		res[i.ID] = containerInfo{labels: i.Config.Labels, env: i.Config.Env}
	}
	return res
}

func runningTasks(rows []taskRow) int { return total(runningPerNode(rows)) }

func wantRunning(n int) func([]taskRow) error {
	return func(rows []taskRow) error {
		if got := runningTasks(rows); got != n {
			return fmt.Errorf("%d running, want %d", got, n)
		}
		return nil
	}
}

// serviceNames lists the services a control client sees.
func serviceNames(t *testing.T, cc shoalpb.ControlClient) map[string]*shoalpb.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.ListServices(ctx, &shoalpb.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*shoalpb.Service{}
	for _, s := range resp.GetServices() {
		out[s.GetSpec().GetName()] = s
	}
	return out
}

func listTasksOf(t *testing.T, cc shoalpb.ControlClient, serviceID string) []*shoalpb.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.ListTasks(ctx, &shoalpb.ListTasksRequest{Filters: map[string]*shoalpb.FilterValues{"service": {Values: []string{serviceID}}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetTasks()
}

// stackV1 is the first version of stack app. Its running services join no
// overlay network (network_mode: none), so the test does not depend on the
// overlay data plane; edge, with no replicas, makes the stack create its
// default network.
const stackV1 = `
services:
  web:
    image: IMG
    command: ["sleep", "3600"]
    network_mode: none
    stop_grace_period: 1s
    environment:
      - RELEASE=1
    labels:
      tier: front
    deploy:
      replicas: 2
      labels:
        team: web
      update_config:
        parallelism: 2
        monitor: 1s
  edge:
    image: IMG
    command: ["sleep", "3600"]
    deploy:
      replicas: 0
  db:
    image: IMG
    command: ["sleep", "3600"]
    network_mode: none
    stop_grace_period: 1s
`

// TestStacks deploys, updates, prunes, rolls back and removes stacks on a
// two-node cluster running real containers, and checks start-up order and
// the refusal of bad files. The subtests share the cluster and run in
// order.
func TestStacks(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 1)
	m := c.managers[0]
	cc := control(t, m)
	img := harness.BusyboxImage(t)
	dir := t.TempDir()

	var dbContainers map[string]containerInfo
	t.Run("deploy", func(t *testing.T) {
		f := composeFile(t, dir, "v1.yml", img, stackV1)
		out, _ := stackCLI(t, m, "deploy", "-c", f, "app")
		wantLines(t, "deploy", out, "Creating network app_default", "Creating service app_db", "Creating service app_edge", "Creating service app_web", "Stack app is at revision 1 (deploy)")
		c.waitTasks(t, m, "app_web", 60*time.Second, wantRunning(2))
		c.waitTasks(t, m, "app_db", 60*time.Second, wantRunning(1))
		web := containersOf(t, "app_web")
		if len(web) != 2 {
			t.Fatalf("%d running web containers, want 2", len(web))
		}
		for id, ci := range web {
			if ci.labels["com.docker.stack.namespace"] != "app" || ci.labels["tier"] != "front" {
				t.Fatalf("container %s labels %v", id, ci.labels)
			}
		}
		svc := serviceNames(t, cc)["app_web"]
		if l := svc.GetSpec().GetLabels(); l["com.docker.stack.namespace"] != "app" || l["team"] != "web" || l["com.docker.stack.image"] != img {
			t.Fatalf("service labels %v", l)
		}
		if out := m.MustCLI(t, "stack", "ls", "--format", "{{.Name}} {{.Services}}"); out != "app 3\n" {
			t.Fatalf("stack ls:\n%s", out)
		}
		if out := m.MustCLI(t, "stack", "services", "--format", "{{.Name}} {{.Replicas}}", "app"); out != "app_db 1/1\napp_edge 0/0\napp_web 2/2\n" {
			t.Fatalf("stack services: %q", out)
		}
		if out := m.MustCLI(t, "stack", "ps", "--format", "{{.Name}}", "app"); strings.Count(out, "app_web.") != 2 || strings.Count(out, "app_db.") != 1 {
			t.Fatalf("stack ps:\n%s", out)
		}
		dbContainers = containersOf(t, "app_db")
	})

	t.Run("update", func(t *testing.T) {
		before := serviceNames(t, cc)
		f := composeFile(t, dir, "v2.yml", img, strings.Replace(stackV1, "RELEASE=1", "RELEASE=2", 1))
		out, _ := stackCLI(t, m, "deploy", "-c", f, "app")
		wantLines(t, "update", out, fmt.Sprintf("Updating service app_web (id: %s)", before["app_web"].GetId()), "Stack app is at revision 2 (deploy)")
		if strings.Contains(out, "app_db") || strings.Contains(out, "Creating") {
			t.Fatalf("an unchanged service or network was touched:\n%s", out)
		}
		after := serviceNames(t, cc)
		if v0, v1 := before["app_db"].GetMeta().GetVersion(), after["app_db"].GetMeta().GetVersion(); v0 != v1 {
			t.Fatalf("app_db rewritten (version %d → %d)", v0, v1)
		}
		if after["app_web"].GetSpecVersion() != before["app_web"].GetSpecVersion()+1 {
			t.Fatalf("app_web spec version %d, was %d", after["app_web"].GetSpecVersion(), before["app_web"].GetSpecVersion())
		}
		harness.Eventually(t, 90*time.Second, "web containers of the new spec", func() error {
			web := containersOf(t, "app_web")
			n := 0
			for _, ci := range web {
				for _, e := range ci.env {
					if e == "RELEASE=2" {
						n++
					}
				}
			}
			if n != 2 || len(web) != 2 {
				return fmt.Errorf("%d web containers, %d with RELEASE=2", len(web), n)
			}
			return nil
		})
		if got := containersOf(t, "app_db"); !sameKeys(got, dbContainers) {
			t.Fatalf("db containers changed: before %v, after %v", keys(dbContainers), keys(got))
		}
	})

	t.Run("prune", func(t *testing.T) {
		noDB := strings.SplitN(strings.Replace(stackV1, "RELEASE=1", "RELEASE=2", 1), "  db:", 2)[0]
		f := composeFile(t, dir, "v3.yml", img, noDB)
		out, _ := stackCLI(t, m, "deploy", "-c", f, "--prune", "app")
		wantLines(t, "prune", out, "Removing service app_db", "Stack app is at revision 3 (deploy)")
		if _, ok := serviceNames(t, cc)["app_db"]; ok {
			t.Fatal("app_db still exists after --prune")
		}
		harness.Eventually(t, 30*time.Second, "db's container stopped", func() error {
			if n := len(containersOf(t, "app_db")); n != 0 {
				return fmt.Errorf("%d db containers running", n)
			}
			return nil
		})
	})

	t.Run("history and rollback", func(t *testing.T) {
		out := m.MustCLI(t, "stack", "history", "--format", "{{.Revision}} {{.Source}} {{.Services}}", "app")
		if out != "3 deploy 2\n2 deploy 3\n1 deploy 3\n" {
			t.Fatalf("stack history: %q", out)
		}
		out, _ = stackCLI(t, m, "rollback", "app")
		wantLines(t, "rollback", out, "Creating service app_db", "Stack app is at revision 4 (rollback to 2)")
		c.waitTasks(t, m, "app_db", 60*time.Second, wantRunning(1))
		out = m.MustCLI(t, "stack", "history", "--format", "{{.Revision}} {{.Source}}", "app")
		if !strings.HasPrefix(out, "4 rollback to 2\n") {
			t.Fatalf("stack history after rollback: %q", out)
		}
		expectCLIError(t, m, "stack app has no revision 42", "stack", "rollback", "--to", "42", "app")
	})

	t.Run("invalid files change nothing", func(t *testing.T) {
		before := serviceNames(t, cc)
		for _, tc := range []struct{ content, want string }{
			{"services:\n  web:\n    image: IMG\n    deploy:\n      replicas: lots\n", `bad.yml: services.web.deploy.replicas must be a number (got "lots")`},
			{"services:\n  web:\n    command: sleep 1\n", "bad.yml: services.web.image is required"},
			{"services:\n  web:\n    image: IMG\n    stop_grace_period: soon\n", `bad.yml: services.web.stop_grace_period must be a duration`},
			{"services:\n  web:\n    image: IMG\nvolumez: {}\n", "bad.yml: unknown top-level key 'volumez'"},
			{"services:\n  web:\n    image: [IMG]\n", "bad.yml: services.web.image must be a string"},
		} {
			f := composeFile(t, dir, "bad.yml", img, tc.content)
			expectCLIError(t, m, tc.want, "stack", "deploy", "-c", f, "app")
		}
		after := serviceNames(t, cc)
		for name, s := range before {
			if a := after[name]; a == nil || a.GetMeta().GetVersion() != s.GetMeta().GetVersion() {
				t.Fatalf("service %s changed by a refused deploy", name)
			}
		}
		if len(after) != len(before) {
			t.Fatalf("services %v after refused deploys, %v before", keys(after), keys(before))
		}
		out := m.MustCLI(t, "stack", "history", "--format", "{{.Revision}}", "app")
		if !strings.HasPrefix(out, "4\n") {
			t.Fatalf("a refused deploy made a revision: %q", out)
		}
	})

	t.Run("depends_on order", func(t *testing.T) {
		f := composeFile(t, dir, "order.yml", img, `
services:
  db:
    image: IMG
    network_mode: none
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 60
  cache:
    image: IMG
    network_mode: none
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  migrate:
    image: IMG
    network_mode: none
    command: ["sleep", "2"]
    deploy:
      mode: replicated-job
  app:
    image: IMG
    network_mode: none
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
      migrate:
        condition: service_completed_successfully
`)
		stackCLI(t, m, "deploy", "-c", f, "order")
		// db is healthy 3 s after its container starts at the earliest:
		// until then app is held back, and says so.
		appLine := func() string {
			out := m.MustCLI(t, "stack", "services", "--format", "{{.Name}} {{.Replicas}}", "order")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "order_app ") {
					return l
				}
			}
			t.Fatalf("stack services lists no order_app:\n%s", out)
			return ""
		}
		if l := appLine(); !strings.HasPrefix(l, "order_app 0/1 (waiting for ") || !strings.Contains(l, "order_db to be healthy") {
			t.Errorf("stack services while app is held back: %q, want 0/1 (waiting for … order_db to be healthy …)", l)
		}
		if out := m.MustCLI(t, "service", "inspect", "--pretty", "order_app"); !strings.Contains(out, "Held Back:") || !strings.Contains(out, "order_db to be healthy") {
			t.Errorf("service inspect --pretty while app is held back has no Held Back line naming order_db:\n%s", out)
		}
		c.waitTasks(t, m, "order_app", 90*time.Second, wantRunning(1))
		if l := appLine(); l != "order_app 1/1" {
			t.Errorf("stack services once app runs: %q, want %q", l, "order_app 1/1")
		}
		svcs := serviceNames(t, cc)
		appTasks := listTasksOf(t, cc, svcs["order_app"].GetId())
		first := appTasks[0]
		for _, task := range appTasks {
			if task.GetMeta().GetCreatedAt() < first.GetMeta().GetCreatedAt() {
				first = task
			}
		}
		created := first.GetMeta().GetCreatedAt()
		// Each dependency reached its state before app's first task was
		// made: db running (so healthy), cache running, migrate complete.
		reached := func(service string, state shoalpb.TaskState) int64 {
			var at int64
			for _, task := range listTasksOf(t, cc, svcs[service].GetId()) {
				if task.GetStatus().GetState() == state || (state == shoalpb.TaskState_TASK_STATE_RUNNING && task.GetStatus().GetState() >= state) {
					if ts := task.GetStatus().GetTimestamp(); at == 0 || ts < at {
						at = ts
					}
				}
			}
			if at == 0 {
				t.Fatalf("no task of %s reached %v", service, state)
			}
			return at
		}
		for _, d := range []struct {
			service string
			state   shoalpb.TaskState
		}{
			{"order_db", shoalpb.TaskState_TASK_STATE_RUNNING},
			{"order_cache", shoalpb.TaskState_TASK_STATE_RUNNING},
			{"order_migrate", shoalpb.TaskState_TASK_STATE_COMPLETE},
		} {
			if at := reached(d.service, d.state); at > created {
				t.Errorf("app's first task was made at %s, before %s reached %v at %s",
					time.Unix(0, created).Format(time.RFC3339Nano), d.service, d.state, time.Unix(0, at).Format(time.RFC3339Nano))
			}
		}
		// db became healthy (RUNNING) only once its file was written, at
		// least 3 s after it started.
		dbTasks := listTasksOf(t, cc, svcs["order_db"].GetId())
		if ran := reached("order_db", shoalpb.TaskState_TASK_STATE_RUNNING); ran-dbTasks[0].GetMeta().GetCreatedAt() < int64(3*time.Second) {
			t.Errorf("db counted as running %s after it was made: before its health check could pass", time.Duration(ran-dbTasks[0].GetMeta().GetCreatedAt()))
		}
	})

	t.Run("rm", func(t *testing.T) {
		out, _ := stackCLI(t, m, "rm", "app", "order")
		wantLines(t, "rm", out, "Removing service app_web", "Removing service app_db", "Removing network app_default",
			"Removing service order_app")
		for name := range serviceNames(t, cc) {
			if strings.HasPrefix(name, "app_") || strings.HasPrefix(name, "order_") {
				t.Fatalf("service %s left after stack rm", name)
			}
		}
		if out := m.MustCLI(t, "stack", "ls", "--format", "{{.Name}}"); out != "" {
			t.Fatalf("stack ls after rm: %q", out)
		}
		if out := m.MustCLI(t, "network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "app_") {
			t.Fatalf("stack networks left:\n%s", out)
		}
		harness.Eventually(t, 60*time.Second, "the stacks' containers stopped", func() error {
			for _, s := range []string{"app_web", "app_db", "order_db", "order_cache", "order_app"} {
				if n := len(containersOf(t, s)); n != 0 {
					return fmt.Errorf("%d containers of %s running", n, s)
				}
			}
			return nil
		})
		_, stderr := stackCLI(t, m, "rm", "app")
		if !strings.Contains(stderr, "Nothing found in stack: app") {
			t.Fatalf("stack rm of a removed stack: %q", stderr)
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sameKeys[V any](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}
