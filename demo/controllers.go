package demo

import (
	"context"
	"errors"
	"time"

	"github.com/deploybot/deploybot/internal/fakeopenshift"
	"github.com/deploybot/deploybot/kubeclient"
	"k8s.io/apimachinery/pkg/types"
)

// controllers is the demo's kube-controller-manager (deployment,
// ReplicaSet, StatefulSet controllers and garbage collector) plus the
// kubelet, for one fake cluster. It is level-triggered: every tick it
// reads everything and moves each object one step towards its spec, which
// makes a rollout take a few ticks per pod, as on a real cluster.
type controllers struct {
	kube     kubeclient.Interface
	images   kubeclient.ImageV1
	registry *fakeopenshift.Registry
	broken   func(digest string) bool
	// pullable, when set, is the digest of an image the demo's OCI
	// registry has (plain Kubernetes environments).
	pullable func(image string) (string, bool)
	now      func() time.Time

	// ticks counts steps; the kubelet ages pods in ticks, not clock time,
	// so a stopped test clock does not stop rollouts.
	ticks     int64
	firstSeen map[types.UID]int64
	podSeq    int64
}

// step runs every controller once, kubelet first so that the controllers
// see this tick's pod states.
func (k *controllers) step(ctx context.Context) error {
	k.ticks++
	return errors.Join(
		k.syncPods(ctx),
		k.syncDeployments(ctx),
		k.syncReplicaSets(ctx),
		k.syncStatefulSets(ctx),
		k.collectGarbage(ctx),
	)
}

func secondsDuration(s int32) time.Duration { return time.Duration(s) * time.Second }
