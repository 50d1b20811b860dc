package orchestrator

import (
	"testing"
	"time"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// TestNewTaskStateFollowsNetworkNeeds checks that only tasks the network
// allocator must handle start NEW; the others go straight to PENDING.
func TestNewTaskStateFollowsNetworkNeeds(t *testing.T) {
	base := func() *shoalpb.Service {
		return &shoalpb.Service{Id: "s", SpecVersion: 1, Spec: &shoalpb.ServiceSpec{
			Name: "web", Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "img"}},
			Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}},
		}}
	}
	withNetwork := base()
	withNetwork.Spec.Task.Networks = []*shoalpb.NetworkAttachmentConfig{{Target: "n1"}}
	withPorts := base()
	withPorts.Spec.Endpoint = &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{{TargetPort: 80}}}
	dnsrrOnly := base()
	dnsrrOnly.Spec.Endpoint = &shoalpb.EndpointSpec{Mode: shoalpb.EndpointSpec_MODE_DNSRR}
	now := time.Unix(100, 0)
	for _, tc := range []struct {
		name string
		svc  *shoalpb.Service
		want shoalpb.TaskState
	}{
		{"plain", base(), shoalpb.TaskState_TASK_STATE_PENDING},
		{"endpoint spec without ports", dnsrrOnly, shoalpb.TaskState_TASK_STATE_PENDING},
		{"network", withNetwork, shoalpb.TaskState_TASK_STATE_NEW},
		{"published port", withPorts, shoalpb.TaskState_TASK_STATE_NEW},
	} {
		task := NewTask(tc.svc, 1, "", "t", now)
		if got := task.GetStatus().GetState(); got != tc.want {
			t.Errorf("%s: state %v, want %v", tc.name, got, tc.want)
		}
		if task.GetStatus().GetTimestamp() != now.UnixNano() || task.DesiredState != shoalpb.TaskState_TASK_STATE_RUNNING {
			t.Errorf("%s: status %v, desired %v", tc.name, task.GetStatus(), task.DesiredState)
		}
	}
}
