package demo

import (
	"context"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func rollingDeployment(replicas int32, surge, unavailable string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: &replicas,
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
	}}
}

func rsWith(replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: &replicas}}
}

func TestNewRSNewReplicas(t *testing.T) {
	tests := []struct {
		name            string
		d               *appsv1.Deployment
		old, newRS      int32
		want            int32
		wantSurge       int32
		wantUnavailable int32
	}{
		{name: "one replica, defaults: surge one, none unavailable", d: rollingDeployment(1, "25%", "25%"), old: 1, newRS: 0, want: 1, wantSurge: 1, wantUnavailable: 0},
		{name: "at the surge limit nothing grows", d: rollingDeployment(2, "25%", "25%"), old: 2, newRS: 1, want: 1, wantSurge: 1, wantUnavailable: 0},
		{name: "four replicas grow by the surge", d: rollingDeployment(4, "25%", "25%"), old: 4, newRS: 0, want: 1, wantSurge: 1, wantUnavailable: 1},
		{name: "never beyond replicas", d: rollingDeployment(2, "100%", "0"), old: 0, newRS: 1, want: 2, wantSurge: 2, wantUnavailable: 0},
		{name: "both zero allows one unavailable", d: rollingDeployment(3, "0", "0"), old: 3, newRS: 0, want: 0, wantSurge: 0, wantUnavailable: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newRS := rsWith(tt.newRS)
			got := newRSNewReplicas(tt.d, []*appsv1.ReplicaSet{rsWith(tt.old), newRS}, newRS)
			if got != tt.want {
				t.Errorf("newRSNewReplicas = %d, want %d", got, tt.want)
			}
			if s, u := maxSurge(tt.d), maxUnavailable(tt.d); s != tt.wantSurge || u != tt.wantUnavailable {
				t.Errorf("surge %d unavailable %d, want %d %d", s, u, tt.wantSurge, tt.wantUnavailable)
			}
		})
	}
}

func TestSetNewReplicaSetAnnotations(t *testing.T) {
	d := rollingDeployment(1, "25%", "25%")
	d.Annotations = map[string]string{
		"kubernetes.io/change-cause":                       "deploy v2",
		revisionAnnotation:                                 "3",
		"kubectl.kubernetes.io/last-applied-configuration": "{}",
	}
	tests := []struct {
		name        string
		rs          map[string]string
		newRevision string
		exists      bool
		want        map[string]string
	}{
		{
			name: "new ReplicaSet gets the revision, the change-cause and replica annotations",
			rs:   nil, newRevision: "4",
			want: map[string]string{revisionAnnotation: "4", "kubernetes.io/change-cause": "deploy v2", desiredReplicasAnnotation: "1", maxReplicasAnnotation: "2"},
		},
		{
			name: "a reused ReplicaSet is renumbered and remembers its old revision",
			rs:   map[string]string{revisionAnnotation: "1"}, newRevision: "4", exists: true,
			want: map[string]string{revisionAnnotation: "4", revisionHistoryAnnotation: "1", "kubernetes.io/change-cause": "deploy v2"},
		},
		{
			name: "revision history accumulates",
			rs:   map[string]string{revisionAnnotation: "4", revisionHistoryAnnotation: "1"}, newRevision: "6", exists: true,
			want: map[string]string{revisionAnnotation: "6", revisionHistoryAnnotation: "1,4", "kubernetes.io/change-cause": "deploy v2"},
		},
		{
			name: "the current revision is not lowered",
			rs:   map[string]string{revisionAnnotation: "5"}, newRevision: "4", exists: true,
			want: map[string]string{revisionAnnotation: "5", "kubernetes.io/change-cause": "deploy v2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: tt.rs}}
			setNewReplicaSetAnnotations(d, rs, tt.newRevision, tt.exists)
			if len(rs.Annotations) != len(tt.want) {
				t.Errorf("annotations = %v, want %v", rs.Annotations, tt.want)
			}
			for k, v := range tt.want {
				if rs.Annotations[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, rs.Annotations[k], v, rs.Annotations)
				}
			}
		})
	}
}

// TestStatefulSetRevisionReuse: reverting a StatefulSet's template reuses the
// equal ControllerRevision with the next revision number, as the real
// controller does, instead of creating a new one.
func TestStatefulSetRevisionReuse(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kube := c.Kube("prod")
	const set = "packit-worker-long-running"
	s, _ := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
	crs, _ := kube.AppsV1().ControllerRevisions(prodNS).List(ctx, metav1.ListOptions{LabelSelector: "component=" + set})
	first := map[string]string{}
	for _, cr := range crs.Items {
		if cr.Revision == 1 {
			a, err := applyRevision(s, &cr)
			if err != nil {
				t.Fatal(err)
			}
			first["name"], first["image"] = cr.Name, a.Spec.Template.Spec.Containers[0].Image
		}
	}
	// pause the trigger so that the template stays where we put it
	s.Annotations[triggerKey] = `[{"from":{"kind":"ImageStreamTag","name":"packit-worker:prod"},"fieldPath":"spec.template.spec.containers[?(@.name==\"` + set + `\")].image","paused":true}]`
	s.Spec.Template.Spec.Containers[0].Image = first["image"]
	if _, err := kube.AppsV1().StatefulSets(prodNS).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := kube.AppsV1().StatefulSets(prodNS).Get(ctx, set, metav1.GetOptions{})
	cr, err := kube.AppsV1().ControllerRevisions(prodNS).Get(ctx, first["name"], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := kube.AppsV1().ControllerRevisions(prodNS).List(ctx, metav1.ListOptions{LabelSelector: "component=" + set})
	if got.Status.UpdateRevision != first["name"] || cr.Revision != historyLen+1 || len(after.Items) != len(crs.Items) {
		t.Errorf("update revision %s (want %s), its number %d (want %d), %d revisions (want %d)",
			got.Status.UpdateRevision, first["name"], cr.Revision, historyLen+1, len(after.Items), len(crs.Items))
	}
}

// TestExampleConfig builds the demo from the shipped examples/packit.yaml,
// which lists no workloads: the packit layout fills them in.
func TestExampleConfig(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatalf("parsing examples/packit.yaml: %v", err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, env := range cfg.Environments {
		kube := c.Kube(env.Name)
		for _, name := range []string{"packit-worker-short-running", "packit-worker-long-running"} {
			if _, err := kube.AppsV1().StatefulSets(env.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("%s: %v", env.Name, err)
			}
		}
		for _, name := range []string{"packit-service", "packit-service-beat", "packit-service-fedmsg", "packit-dashboard", "tokman"} {
			if _, err := kube.AppsV1().Deployments(env.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("%s: %v", env.Name, err)
			}
		}
		if clients := c.EnvClients(); clients[env.Name].Namespace != env.Namespace || clients[env.Name].Kube == nil || clients[env.Name].Images == nil {
			t.Errorf("EnvClients[%s] = %+v", env.Name, clients[env.Name])
		}
	}
}

func TestClustersPerContext(t *testing.T) {
	cfg := packitConfig()
	cfg.Environments[0].Context = "stg-cluster"
	cfg.Environments[1].Context = "prod-cluster"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kube("stg") == c.Kube("prod") || c.Images("stg") == c.Images("prod") {
		t.Error("environments on different contexts share a fake cluster")
	}
	shared, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	if shared.Kube("stg") != shared.Kube("prod") {
		t.Error("environments on the same context got different fake clusters")
	}

	dup := packitConfig()
	dup.Environments[1].Namespace = dup.Environments[0].Namespace
	if _, err := New(dup); err == nil {
		t.Error("two environments in one namespace of one cluster were accepted")
	}
	if _, err := New(&config.Config{}); err == nil {
		t.Error("a config without environments was accepted")
	}
}

func TestStartStop(t *testing.T) {
	c, err := New(packitConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	c.Stop()
	c.Stop() // idempotent
	if err := c.Start(ctx); err != nil {
		t.Errorf("Start after Stop: %v", err)
	}
	c.Stop()
}
