package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

func renderLs(t *testing.T, format, self string) string {
	t.Helper()
	tmpl, err := nodeListFormat(format)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := renderNodeList(&buf, tmpl, fixtureNodes(), self); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestNodeLsDefaultTable(t *testing.T) {
	row := func(id, host, status, avail, mgr, engine string) string {
		return fmt.Sprintf("%-30s%-11s%-10s%-15s%-17s%s\n", id, host, status, avail, mgr, engine)
	}
	want := row("ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION") +
		row(idAlpha, "alpha", "Ready", "Active", "Leader", "1.2.3") +
		row(idBravo+" *", "bravo", "Ready", "Active", "Reachable", "1.2.3") +
		row(idCharlie, "charlie", "Down", "Drain", "", "1.2.2") +
		row(idDelta, "delta", "Unknown", "Pause", "Unreachable", "1.2.3")
	for _, format := range []string{"", "table", " table "} {
		if got := renderLs(t, format, idBravo); got != want {
			t.Errorf("format %q:\ngot:\n%s\nwant:\n%s", format, got, want)
		}
	}
}

func TestNodeLsSelfMarkerOnlyOnSelf(t *testing.T) {
	got := renderLs(t, "", "")
	if strings.Contains(got, "*") {
		t.Errorf("no node is self, yet a marker is shown:\n%s", got)
	}
	got = renderLs(t, "", idCharlie)
	if n := strings.Count(got, "*"); n != 1 || !strings.Contains(got, idCharlie+" *") {
		t.Errorf("want exactly one marker, on charlie:\n%s", got)
	}
}

func TestNodeLsCustomTable(t *testing.T) {
	got := renderLs(t, `table {{.ID}}\t{{.Hostname}}\t{{.ManagerStatus}}\t{{.TLSStatus}}`, idAlpha)
	row := func(a, b, c, d string) string { return fmt.Sprintf("%-28s%-11s%-17s%s\n", a, b, c, d) }
	want := row("ID", "HOSTNAME", "MANAGER STATUS", "TLS STATUS") +
		row(idAlpha, "alpha", "Leader", "Ready") +
		row(idBravo, "bravo", "Reachable", "Ready") +
		row(idCharlie, "charlie", "", "Ready") +
		row(idDelta, "delta", "Unreachable", "Ready")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodeLsTemplate(t *testing.T) {
	got := renderLs(t, `{{.Hostname}}:{{.Status}}:{{.Availability}}:{{.ManagerStatus}}:{{.Self}}:{{lower .Status}}`, idAlpha)
	want := "alpha:Ready:Active:Leader:true:ready\n" +
		"bravo:Ready:Active:Reachable:false:ready\n" +
		"charlie:Down:Drain::false:down\n" +
		"delta:Unknown:Pause:Unreachable:false:unknown\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodeLsJSONLines(t *testing.T) {
	for _, format := range []string{"json", "{{json .}}"} {
		got := renderLs(t, format, idAlpha)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(lines) != 4 {
			t.Fatalf("format %q: want 4 lines, got %q", format, got)
		}
		want := `{"ID":"` + idAlpha + `","Self":true,"Hostname":"alpha","Status":"Ready","Availability":"Active","ManagerStatus":"Leader","EngineVersion":"1.2.3","TLSStatus":"Ready"}`
		if lines[0] != want {
			t.Errorf("format %q:\ngot  %s\nwant %s", format, lines[0], want)
		}
	}
}

func TestTemplateParseError(t *testing.T) {
	_, err := parseFormat("{{.ID")
	if err == nil || !strings.HasPrefix(err.Error(), "template parsing error:") {
		t.Fatalf("got %v", err)
	}
}

func TestNodeInspectJSONShape(t *testing.T) {
	var buf bytes.Buffer
	o := &nodeInspectOptions{}
	nodes := []nodeJSON{newNodeJSON(fixtureNode(idAlpha)), newNodeJSON(fixtureNode(idCharlie))}
	if err := printNodes(&buf, o, nil, nodes); err != nil {
		t.Fatal(err)
	}
	want := `[
    {
        "ID": "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "Version": {
            "Index": 12
        },
        "CreatedAt": "2023-11-14T22:13:20.123456789Z",
        "UpdatedAt": "2023-11-14T22:15:00Z",
        "Spec": {
            "Labels": {
                "ssd": "",
                "zone": "a"
            },
            "Role": "manager",
            "Availability": "active"
        },
        "Description": {
            "Hostname": "alpha",
            "Platform": {
                "Architecture": "x86_64",
                "OS": "linux"
            },
            "Resources": {
                "NanoCPUs": 4000000000,
                "MemoryBytes": 8272408576
            },
            "Engine": {
                "EngineVersion": "1.2.3"
            }
        },
        "Status": {
            "State": "ready",
            "Addr": "10.0.0.1"
        },
        "ManagerStatus": {
            "Leader": true,
            "Reachability": "reachable",
            "Addr": "10.0.0.1:2377"
        }
    },
    {
        "ID": "ccccccccccccccccccccccccc",
        "Version": {
            "Index": 9
        },
        "CreatedAt": "2023-11-14T22:18:20Z",
        "UpdatedAt": "2023-11-14T22:20:00Z",
        "Spec": {
            "Labels": {},
            "Role": "worker",
            "Availability": "drain"
        },
        "Description": {
            "Hostname": "charlie",
            "Platform": {
                "Architecture": "",
                "OS": ""
            },
            "Resources": {
                "NanoCPUs": 0,
                "MemoryBytes": 0
            },
            "Engine": {
                "EngineVersion": "1.2.2"
            }
        },
        "Status": {
            "State": "down",
            "Message": "heartbeat failure",
            "Addr": "10.0.0.3"
        }
    }
]
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Round trip: the output is a JSON array of objects.
	var back []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if _, ok := back[1]["ManagerStatus"]; ok {
		t.Error("a worker has no ManagerStatus")
	}
}

func TestNodeInspectTemplate(t *testing.T) {
	cases := []struct{ format, id, want string }{
		{"{{.Spec.Availability}}", idCharlie, "drain"},
		{"{{.Status.State}}/{{.Spec.Role}}", idDelta, "unknown/manager"},
		{"{{.ManagerStatus.Reachability}} {{.ManagerStatus.Leader}}", idAlpha, "reachable true"},
		{"{{json .Spec.Labels}}", idAlpha, `{"ssd":"","zone":"a"}`},
		{"{{json .Spec.Labels}}", idBravo, `{}`},
		{"{{.Description.Hostname}} {{.Version.Index}} {{.CreatedAt.Unix}}", idAlpha, "alpha 12 1700000000"},
		{`{{join (split .Status.Addr ".") "-"}} {{upper .Description.Hostname}}`, idAlpha, "10-0-0-1 ALPHA"},
	}
	for _, c := range cases {
		tmpl, err := parseFormat(c.format)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := printNodes(&buf, &nodeInspectOptions{}, tmpl, []nodeJSON{newNodeJSON(fixtureNode(c.id))}); err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		if got := strings.TrimSuffix(buf.String(), "\n"); got != c.want {
			t.Errorf("%s on %s: got %q, want %q", c.format, c.id, got, c.want)
		}
	}
}

func TestNodeInspectPretty(t *testing.T) {
	var buf bytes.Buffer
	if err := printNodePretty(&buf, newNodeJSON(fixtureNode(idAlpha))); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"ID:                     " + idAlpha + "\n",
		"Labels:\n - ssd\n - zone=a\n",
		"Hostname:               alpha\n",
		"Joined at:              2023-11-14 22:13:20.123456789 +0000 UTC\n",
		"Status:\n State:                 Ready\n Availability:          Active\n Address:               10.0.0.1\n",
		"Manager Status:\n Address:               10.0.0.1:2377\n Raft Status:           Reachable\n Leader:                Yes\n",
		"Platform:\n Operating System:      linux\n Architecture:          x86_64\n",
		"Resources:\n CPUs:                  4\n Memory:                7.704GiB\n",
		"Engine Version:         1.2.3\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	buf.Reset()
	if err := printNodePretty(&buf, newNodeJSON(fixtureNode(idCharlie))); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "Manager Status") || !strings.Contains(buf.String(), " Message:               heartbeat failure\n") {
		t.Errorf("worker:\n%s", buf.String())
	}
}

func TestHumanUnits(t *testing.T) {
	durations := map[time.Duration]string{
		500 * time.Millisecond:   "Less than a second",
		time.Second:              "1 second",
		5 * time.Second:          "5 seconds",
		time.Minute:              "About a minute",
		10 * time.Minute:         "10 minutes",
		time.Hour:                "About an hour",
		30 * time.Hour:           "30 hours",
		72 * time.Hour:           "3 days",
		21 * 24 * time.Hour:      "3 weeks",
		90 * 24 * time.Hour:      "3 months",
		3 * 365 * 24 * time.Hour: "3 years",
	}
	for d, want := range durations {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
	sizes := map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 8272408576: "7.704GiB"}
	for n, want := range sizes {
		if got := binarySize(n); got != want {
			t.Errorf("binarySize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestInfoViewFormat(t *testing.T) {
	v := newInfoView(&shoalpb.InfoResponse{
		NodeId: idAlpha, NodeName: "alpha", LocalNodeState: "active", ControlAvailable: true,
		ClusterId: "clus", Managers: 3, Nodes: 4, NodeAddr: "10.0.0.1", ServerVersion: "1.2.3",
	})
	tmpl, err := parseFormat("{{.Swarm.NodeID}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Cluster.ID}} {{.Swarm.Managers}} {{.Swarm.Nodes}} {{.Swarm.NodeAddr}} {{.Name}} {{.ServerVersion}}")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	if want := idAlpha + " active true clus 3 4 10.0.0.1 alpha 1.2.3\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
	// An inactive node still renders .Swarm.Cluster.ID (as empty).
	buf.Reset()
	if err := tmpl.execute(&buf, newInfoView(&shoalpb.InfoResponse{NodeName: "x", LocalNodeState: "inactive"})); err != nil {
		t.Fatal(err)
	}
}
