package cluster_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/deploybot/deploybot/cluster"
)

// watcher runs WatchEnv and counts its calls of changed.
type watcher struct {
	calls  atomic.Int32
	inside atomic.Bool // a call is running: calls must not overlap
	done   chan error
	cancel context.CancelFunc
}

func startWatch(t *testing.T, set *cluster.Set, env string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- set.WatchEnv(ctx, env, func() {
			if w.inside.Swap(true) {
				t.Error("changed called concurrently with itself")
			}
			w.calls.Add(1)
			w.inside.Store(false)
		})
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// expect waits for the n-th call, then makes sure no other call follows
// soon: irrelevant updates are made before a relevant one, and the informer
// delivers events in order, so a call they caused would come by then.
func (w *watcher) expect(t *testing.T, what string, n int32) {
	t.Helper()
	waitFor(t, what, func() bool { return w.calls.Load() >= n })
	time.Sleep(50 * time.Millisecond)
	if got := w.calls.Load(); got != n {
		t.Fatalf("%s: changed called %d times, want %d", what, got, n)
	}
}

func (w *watcher) stop(t *testing.T) {
	t.Helper()
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("WatchEnv after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchEnv did not return after cancel")
	}
}

func TestWatchEnvImageStreams(t *testing.T) {
	f := newFixture(t, nil, []*imagev1.ImageStream{imageStream("web", false, 1), imageStream("worker", false, 1)})
	f.push("web", 2)
	ctx := context.Background()
	w := startWatch(t, f.set, testEnv)
	w.expect(t, "the initial list", 1)

	// A hold writes annotations only: no call. Then an import moves the tag.
	is := f.stream(t, "web")
	is.Annotations = map[string]string{"note": "held"}
	if _, err := f.images.ImageV1().ImageStreams(testNS).Update(ctx, is, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.set.Execute(ctx, importPlan(importTarget("web", 1, 2)), nil); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "an import", 2)

	if err := f.images.ImageV1().ImageStreams(testNS).Delete(ctx, "worker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "a deleted stream", 3)
}

func TestWatchEnvWorkloads(t *testing.T) {
	set, kube, _ := kubeFixture(t)
	ctx := context.Background()
	w := startWatch(t, set, testEnv)
	w.expect(t, "the initial list", 1)

	// A rollout's status updates: no call. Then kubectl set image.
	d, err := kube.AppsV1().Deployments(testNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d.Status.UpdatedReplicas = int32(i)
		if d, err = kube.AppsV1().Deployments(testNS).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"` + webRepo + `@` + webDigest(2) + `"}]}}}}`
	if _, err := kube.AppsV1().Deployments(testNS).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-set"}); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "kubectl set image", 2)

	// A status-only update of the StatefulSet, then an annotation (a pin).
	s, err := kube.AppsV1().StatefulSets(testNS).Get(ctx, "web-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Status.ReadyReplicas = 1
	if s, err = kube.AppsV1().StatefulSets(testNS).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Annotations = map[string]string{cluster.PinnedAnnotation: webRepo + "@" + webDigest(1)}
	if _, err := kube.AppsV1().StatefulSets(testNS).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "a pin annotation", 3)
}

func TestWatchEnvErrors(t *testing.T) {
	t.Run("unknown environment", func(t *testing.T) {
		set, _, _ := kubeFixture(t)
		err := set.WatchEnv(context.Background(), "nowhere", func() { t.Error("changed called") })
		if err == nil || !strings.HasPrefix(err.Error(), "watching nowhere: ") {
			t.Fatalf("WatchEnv = %v, want a watching nowhere: error", err)
		}
	})
	t.Run("lists keep failing", func(t *testing.T) {
		set, kube, _ := kubeFixture(t)
		kube.PrependReactor("list", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("forbidden")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := set.WatchEnv(ctx, testEnv, func() { t.Error("changed called") })
		if err == nil || !strings.Contains(err.Error(), "did not sync") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WatchEnv = %v, want a did not sync error wrapping the deadline", err)
		}
	})
}
