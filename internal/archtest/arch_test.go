package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/shoal-project/shoal"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
	Name       string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rules lists, per package prefix, the packages it must never depend on
// (directly or indirectly), with the reason.
// With direct set, only the package's own imports are checked (the
// generated API package brings gRPC along with the message types).
var rules = []struct {
	pkg, banned, why string
	direct           bool
}{
	{"worker", "manager", "the node agent runs on workers, which hold no cluster state", false},
	{"worker", "raftstore", "workers take no part in consensus", false},
	{"worker", "node", "node wires the worker, not the other way round", false},
	{"manager", "worker", "the control plane does not run tasks", false},
	{"manager", "node", "node wires the manager, not the other way round", false},
	{"manager/store", "github.com/hashicorp/raft", "the store is testable without replication", false},
	{"manager/store", "raftstore", "the store is testable without replication", false},
	{"manager/store", "google.golang.org/grpc", "the store knows nothing of RPC", true},
	{"manager/ca", "google.golang.org/grpc", "the CA is pure crypto", false},
	{"manager/ca", "manager/store", "the CA is pure crypto", false},
	{"manager/scheduler", "manager/store", "placement is a pure function of its inputs", false},
	{"manager/scheduler", "github.com/hashicorp/raft", "placement is a pure function of its inputs", false},
	{"manager/scheduler", "google.golang.org/grpc", "placement is a pure function of its inputs", true},
	{"manager/constraint", "manager/store", "constraints are pure", false},
	{"manager/orchestrator", "github.com/hashicorp/raft", "orchestrators are tested on a store without Raft", false},
	{"manager/orchestrator", "raftstore", "orchestrators are tested on a store without Raft", false},
	{"manager/orchestrator", "google.golang.org/grpc", "orchestrators know nothing of RPC", true},
	{"manager/allocator", "github.com/hashicorp/raft", "the allocator is tested on a store without Raft", false},
	{"manager/allocator", "raftstore", "the allocator is tested on a store without Raft", false},
	{"manager/allocator", "google.golang.org/grpc", "the allocator knows nothing of RPC", true},
	{"manager/allocator", "worker", "the allocator is control plane only", false},
	{"manager/allocator", "node", "the allocator is control plane only", false},
	{"manager/orchestrator/update", "manager/orchestrator/replicated", "the updater and the mode orchestrators meet only in the store", false},
	{"manager/orchestrator/update", "manager/orchestrator/global", "the updater and the mode orchestrators meet only in the store", false},
	{"manager/orchestrator/replicated", "manager/orchestrator/update", "the updater and the mode orchestrators meet only in the store", false},
	{"manager/orchestrator/global", "manager/orchestrator/update", "the updater and the mode orchestrators meet only in the store", false},
	{"identity", "manager", "identity is shared by every role", false},
	{"identity", "worker", "identity is shared by every role", false},
	{"identity", "node", "identity is shared by every role", false},
	{"raftstore", "manager", "raftstore replicates opaque commands", false},
	{"raftstore", "proto", "raftstore replicates opaque commands", false},
	{"raftstore", "google.golang.org/grpc", "raftstore replicates opaque commands", false},
	{"node/netmux", "manager", "the port mux carries bytes, not cluster state", false},
	{"node/gossip", "manager", "gossip is not a source of truth", false},
	{"integration/harness", "manager", "the harness drives the binary only", false},
	{"overlay", "manager", "the data plane is fed through interfaces", false},
	{"overlay", "raftstore", "the data plane is fed through interfaces", false},
	{"overlay", "worker", "the data plane is fed through interfaces; node wires it", false},
	{"overlay", "node", "the data plane is fed through interfaces; node wires it", false},
	{"overlay", "google.golang.org/grpc", "the data plane makes no RPC", false},
	{"overlay/netdb", "worker", "the endpoint table is fed through its API and memberlist's delegates", false},
	{"overlay/netdb", "node", "the endpoint table is fed through its API and memberlist's delegates", false},
	{"overlay/netdb", "google.golang.org/grpc", "the endpoint table travels over gossip, not RPC", false},
	{"overlay/dns", "worker", "the resolver answers from its Records interface", false},
	{"overlay/dns", "node", "the resolver answers from its Records interface", false},
	{"overlay/dns", "overlay/netdb", "the resolver answers from its Records interface", false},
	{"overlay/dns", "google.golang.org/grpc", "the resolver makes no RPC", false},
	{"internal/compose", "manager", "compose files are converted by the CLI, apart from the cluster", false},
	{"internal/compose", "node", "compose files are converted by the CLI, apart from the cluster", false},
	{"internal/compose", "worker", "compose files are converted by the CLI, apart from the cluster", false},
	{"internal/compose", "google.golang.org/grpc", "compose conversion makes no calls", true},
	{"internal/pace", "manager", "the batching rule is shared by every role", false},
	{"internal/pace", "worker", "the batching rule is shared by every role", false},
	{"internal/pace", "node", "the batching rule is shared by every role", false},
}

func full(p string) string {
	if strings.Contains(p, ".") {
		return p
	}
	return module + "/" + p
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// TestImportBoundaries keeps the architecture's layering true.
func TestImportBoundaries(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, r := range rules {
			if !under(p.ImportPath, full(r.pkg)) {
				continue
			}
			deps := p.Imports
			if !r.direct {
				deps = append(deps, p.Deps...)
			}
			for _, d := range deps {
				if under(d, full(r.banned)) {
					t.Errorf("%s depends on %s: %s", p.ImportPath, d, r.why)
					break
				}
			}
		}
		for _, d := range p.Imports {
			if under(d, module+"/cmd") {
				t.Errorf("%s imports %s: nothing imports cmd/", p.ImportPath, d)
			}
		}
	}
}

// generated packages hold only protoc output, which carries no package doc.
var generated = map[string]bool{module + "/proto/shoalpb": true}

// TestPackageDocs requires every package to say what it owns.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Doc == "" && !generated[p.ImportPath] {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
