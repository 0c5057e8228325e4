package kubefake_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/deploybot/deploybot/internal/kubefake"
)

func pod(name, app string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": app}}}
}

// TestListWatchPatch: the generic list helpers (meta accessors instead of one
// function per type) filter by label, and watch and patch reach the tracker.
func TestListWatchPatch(t *testing.T) {
	ctx := context.Background()
	c := kubefake.NewClientset(pod("web-1", "web"), pod("db-1", "db"))
	pods := c.CoreV1().Pods("shop")
	l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "web-1" {
		t.Fatalf("list app=web = %+v, %v; want web-1 only", l, err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p, err := pods.Patch(ctx, "web-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"front"}}}`), metav1.PatchOptions{})
	if err != nil || p.Labels["tier"] != "front" || p.Labels["app"] != "web" {
		t.Fatalf("patch = %+v, %v", p.Labels, err)
	}
	// The tracker first replays what it holds (ADDED), then the change.
	timeout := time.After(5 * time.Second)
	for modified := false; !modified; {
		select {
		case ev := <-w.ResultChan():
			modified = ev.Type == watch.Modified && ev.Object.(*corev1.Pod).Name == "web-1"
		case <-timeout:
			t.Fatal("no Modified event for the patch")
		}
	}
	if got := len(c.Actions()); got != 3 {
		t.Errorf("%d actions recorded, want 3 (list, watch, patch)", got)
	}
}
