package demo

import (
	"fmt"
	"slices"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/fakeopenshift"
	imagev1 "github.com/openshift/api/image/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// History of every seeded tag: digests 1..historyLen were imported (the
// last one is current), digest historyLen+1 is pushed to the registry but
// not imported yet, so `import` has something to show.
const historyLen = 3

// brokenN is the history entry of a broken service's image that never
// becomes Ready: the oldest, so the seeded state is healthy and a plain
// `undo` (to the previous revision) works, while a revert to it (or
// `undo --to-revision 1`) shows a failing rollout.
const brokenN = 1

// importedAgo is how long before the clock's now each history entry was
// imported (index n-1 for digest n).
var importedAgo = []time.Duration{15 * 24 * time.Hour, 8 * 24 * time.Hour, 26 * time.Hour}

// packitWorkloads is the packit layout, used for services whose config
// lists no workloads (the config then relies on trigger discovery).
var packitWorkloads = map[string][]config.Workload{
	"packit-worker": {
		{Kind: "StatefulSet", Name: "packit-worker-short-running"},
		{Kind: "StatefulSet", Name: "packit-worker-long-running"},
		{Kind: "Deployment", Name: "packit-service-beat"},
	},
}

// Demo users and the access each gets per environment (seeded RBAC).
const (
	deployerRole = "deploybot-demo-deployer"
	viewerRole   = "deploybot-demo-viewer"
	// botRole is what charts/deploybot gives the bot's service account in
	// each target namespace (templates/rbac-target.yaml).
	botRole = "deploybot"
)

// BotUser is the Kubernetes identity the demo's bot has: scheduled imports
// are requested as it (the scheduler's default identity, as the demo has no
// service account to ask the API server about).
const BotUser = "deploybot"

// seedEnv fills fc with env's image streams, workloads and RBAC.
func (c *Cluster) seedEnv(fc *fakeCluster, env config.Environment) error {
	now := c.opts.now()
	ns := env.Namespace
	add := func(kube bool, objs ...runtime.Object) error {
		for _, o := range objs {
			var err error
			if kube {
				err = fc.kube.Tracker().Add(o)
			} else {
				err = fc.images.Tracker().Add(o)
			}
			if err != nil {
				return fmt.Errorf("seeding %s: %w", ns, err)
			}
		}
		return nil
	}
	if err := add(true, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV()}}); err != nil {
		return err
	}
	for _, svc := range c.cfg.Services {
		stream := svc.Stream()
		digests := make([]string, historyLen+2)
		for n := 1; n <= historyLen+1; n++ {
			digests[n] = fakeopenshift.Digest(svc.Repository, env.Tag, n)
			c.registry.PushImage(svc.Repository, env.Tag, digests[n], c.seedLabels(svc, env, n))
		}
		if c.opts.broken[svc.Name] {
			c.broken[svc.Name+"/"+env.Name] = digests[brokenN]
			c.brokenSet[digests[brokenN]] = true
		}
		if c.opts.brokenNext[svc.Name+"/"+env.Name] {
			c.brokenSet[digests[historyLen+1]] = true
		}
		is := seedStream(fc, env, stream, svc.Repository, digests, now)
		if err := add(false, is); err != nil {
			return err
		}
		workloads := svc.Workloads
		if len(workloads) == 0 {
			workloads = c.opts.workloads[svc.Name]
		}
		if len(workloads) == 0 {
			workloads = []config.Workload{{Kind: "Deployment", Name: svc.Name}}
		}
		for _, w := range workloads {
			objs, err := seedWorkload(fc, env, w, triggeredSeed(env, stream, svc.Repository, w.Name, digests), now)
			if err != nil {
				return fmt.Errorf("service %s: %w", svc.Name, err)
			}
			if err := add(true, objs...); err != nil {
				return err
			}
		}
	}
	return add(true, c.rbacObjects(fc, env)...)
}

// rbacObjects are env's demo RBAC, and a deployer binding for the user
// admin when the config maps someone to it (examples/kubernetes.yaml does,
// as in the snippet).
func (c *Cluster) rbacObjects(fc *fakeCluster, env config.Environment) []runtime.Object {
	objs := seedRBAC(fc, env)
	if slices.ContainsFunc(c.cfg.Identities.Users, func(u config.UserMapping) bool { return u.User == adminUser }) {
		objs = append(objs, bind(fc, env.Namespace, adminUser, deployerRole))
	}
	return objs
}

// adminUser deploys everywhere, like alice.
const adminUser = "admin"

// workloadSeed is what a seeded workload ran in each revision of its
// history and how each rollout was recorded.
type workloadSeed struct {
	repo    string
	digests []string // digests[n] is what revision n runs, 1..historyLen
	// image is the container image of revision n.
	image func(n int) string
	// cause is revision n's kubernetes.io/change-cause.
	cause func(n int) string
	// trigger is the image.openshift.io/triggers annotation; "" on plain
	// Kubernetes, where nothing re-applies an image.
	trigger string
	// template is the pod template running image.
	template func(image string) corev1.PodTemplateSpec
	labels   map[string]string
}

// triggeredSeed is an OpenShift workload: it runs repo@digest, set by the
// image trigger of stream:TAG.
func triggeredSeed(env config.Environment, stream, repo, name string, digests []string) workloadSeed {
	return workloadSeed{
		repo: repo, digests: digests,
		image:    func(n int) string { return repo + "@" + digests[n] },
		cause:    func(n int) string { return changeCause(stream, env.Tag, digests[n]) },
		trigger:  triggerAnnotation(stream, env.Tag, name),
		template: func(image string) corev1.PodTemplateSpec { return podTemplateFor(name, image) },
		labels:   workloadLabels(name),
	}
}

// seedWorkload seeds one listed workload.
func seedWorkload(fc *fakeCluster, env config.Environment, w config.Workload, seed workloadSeed, now time.Time) ([]runtime.Object, error) {
	switch w.Kind {
	case "Deployment":
		return seedDeployment(fc, env, w.Name, seed, now), nil
	case "StatefulSet":
		return seedStatefulSet(fc, env, w.Name, seed, now)
	}
	return nil, fmt.Errorf("workload kind %q is not Deployment or StatefulSet", w.Kind)
}

// withTrigger adds the trigger annotation to m when the seed has one.
func (s workloadSeed) withTrigger(m map[string]string) map[string]string {
	if s.trigger != "" {
		m[triggerKey] = s.trigger
	}
	return m
}

// seedStream is the ImageStream as packit has it: one spec tag following
// repo:TAG with the env's scheduled import and a local lookup policy, and
// the imported history, newest first.
func seedStream(fc *fakeCluster, env config.Environment, stream, repo string, digests []string, now time.Time) *imagev1.ImageStream {
	gen := int64(historyLen)
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{
			Name: stream, Namespace: env.Namespace,
			UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV(), Generation: gen,
			CreationTimestamp: metav1.NewTime(now.Add(-30 * 24 * time.Hour)),
			Labels:            map[string]string{"app": "packit"},
			Annotations: map[string]string{
				imagev1.DockerImageRepositoryCheckAnnotation: now.Add(-importedAgo[historyLen-1]).UTC().Format(time.RFC3339),
			},
		},
		Spec: imagev1.ImageStreamSpec{
			LookupPolicy: imagev1.ImageLookupPolicy{Local: true},
			Tags: []imagev1.TagReference{{
				Name:            env.Tag,
				From:            &corev1.ObjectReference{Kind: "DockerImage", Name: repo + ":" + env.Tag},
				Generation:      &gen,
				ImportPolicy:    imagev1.TagImportPolicy{Scheduled: env.Scheduled, ImportMode: imagev1.ImportModeLegacy},
				ReferencePolicy: imagev1.TagReferencePolicy{Type: imagev1.SourceTagReferencePolicy},
			}},
		},
		Status: imagev1.ImageStreamStatus{
			DockerImageRepository: fmt.Sprintf("image-registry.openshift-image-registry.svc:5000/%s/%s", env.Namespace, stream),
		},
	}
	events := imagev1.NamedTagEventList{Tag: env.Tag}
	for n := historyLen; n >= 1; n-- {
		events.Items = append(events.Items, imagev1.TagEvent{
			Created:              metav1.NewTime(now.Add(-importedAgo[n-1])),
			DockerImageReference: repo + "@" + digests[n],
			Image:                digests[n],
			Generation:           int64(n),
		})
	}
	is.Status.Tags = []imagev1.NamedTagEventList{events}
	return is
}

// triggerAnnotation is the exact form packit uses.
func triggerAnnotation(stream, tag, container string) string {
	return fmt.Sprintf(`[{"from":{"kind":"ImageStreamTag","name":"%s:%s"},"fieldPath":"spec.template.spec.containers[?(@.name==\"%s\")].image"}]`, stream, tag, container)
}

func changeCause(stream, tag, digest string) string {
	return fmt.Sprintf("image %s:%s updated to %s", stream, tag, digest[:len("sha256:")+12])
}

func workloadLabels(name string) map[string]string {
	return map[string]string{"app": "packit", "component": name}
}

func podTemplateFor(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: workloadLabels(name)},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  name,
				Image: image,
				Env:   []corev1.EnvVar{{Name: "DEPLOYMENT", Value: "demo"}},
			}},
		},
	}
}

// seedDeployment is a Deployment on digest historyLen with one ReplicaSet
// per history entry (revisions 1..historyLen, each with a change-cause)
// and the running pod of the current one.
func seedDeployment(fc *fakeCluster, env config.Environment, name string, seed workloadSeed, now time.Time) []runtime.Object {
	replicas := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: env.Namespace, UID: fc.api.nextUID(), Generation: historyLen,
			CreationTimestamp: metav1.NewTime(now.Add(-30 * 24 * time.Hour)),
			Labels:            seed.labels,
			Annotations:       seed.withTrigger(map[string]string{revisionAnnotation: fmt.Sprint(historyLen)}),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: seed.labels},
			Template: seed.template(seed.image(historyLen)),
		},
	}
	defaultDeployment(d)
	objs := []runtime.Object{d}
	var current *appsv1.ReplicaSet
	for n := 1; n <= historyLen; n++ {
		t := seed.template(seed.image(n))
		hash := podTemplateHash(&t, nil)
		t.Labels = withLabel(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
		rsReplicas := int32(0)
		if n == historyLen {
			rsReplicas = replicas
		}
		created := metav1.NewTime(now.Add(-importedAgo[n-1]))
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{
				Name: name + "-" + hash, Namespace: env.Namespace, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV(),
				Generation: 2, CreationTimestamp: created, Labels: t.Labels,
				Annotations: seed.withTrigger(map[string]string{
					revisionAnnotation:        fmt.Sprint(n),
					desiredReplicasAnnotation: fmt.Sprint(replicas),
					maxReplicasAnnotation:     fmt.Sprint(replicas + maxSurge(d)),
					changeCauseAnnotation:     seed.cause(n),
				}),
				OwnerReferences: []metav1.OwnerReference{controllerRef(name, d.UID, "Deployment")},
			},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &rsReplicas,
				Selector: &metav1.LabelSelector{MatchLabels: t.Labels},
				Template: t,
			},
			Status: appsv1.ReplicaSetStatus{Replicas: rsReplicas, FullyLabeledReplicas: rsReplicas, ReadyReplicas: rsReplicas, AvailableReplicas: rsReplicas, ObservedGeneration: 2},
		}
		objs = append(objs, rs)
		current = rs
	}
	objs = append(objs, runningPod(fc, current.Name+"-"+podSuffix(current.Name), env.Namespace, current.Spec.Template,
		controllerRef(current.Name, current.UID, "ReplicaSet"), seed.repo, seed.digests[historyLen], now.Add(-importedAgo[historyLen-1])))

	transition := metav1.NewTime(now.Add(-importedAgo[historyLen-1]))
	d.ResourceVersion = fc.api.nextRV()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: reasonMinimumAvailable, Message: "Deployment has minimum availability.", LastUpdateTime: transition, LastTransitionTime: transition},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reasonNewRSAvailable, Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", current.Name), LastUpdateTime: transition, LastTransitionTime: transition},
		},
	}
	return objs
}

// seedStatefulSet is an OrderedReady StatefulSet with two pods on digest
// historyLen and one ControllerRevision per history entry.
func seedStatefulSet(fc *fakeCluster, env config.Environment, name string, seed workloadSeed, now time.Time) ([]runtime.Object, error) {
	replicas := int32(2)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: env.Namespace, UID: fc.api.nextUID(), Generation: historyLen,
			CreationTimestamp: metav1.NewTime(now.Add(-30 * 24 * time.Hour)),
			Labels:            seed.labels,
			Annotations:       seed.withTrigger(map[string]string{}),
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			Selector:            &metav1.LabelSelector{MatchLabels: seed.labels},
			ServiceName:         name,
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Template:            seed.template(seed.image(historyLen)),
		},
	}
	defaultStatefulSet(s)
	var objs []runtime.Object
	var current *appsv1.ControllerRevision
	zero := int32(0)
	for n := 1; n <= historyLen; n++ {
		at := s.DeepCopy()
		at.Spec.Template = seed.template(seed.image(n))
		at.Annotations = seed.withTrigger(map[string]string{changeCauseAnnotation: seed.cause(n)})
		cr, err := newControllerRevision(at, int64(n), &zero)
		if err != nil {
			return nil, fmt.Errorf("seeding %s/%s: %w", env.Namespace, name, err)
		}
		cr.UID, cr.ResourceVersion = fc.api.nextUID(), fc.api.nextRV()
		cr.CreationTimestamp = metav1.NewTime(now.Add(-importedAgo[n-1]))
		objs = append(objs, cr)
		current = cr
	}
	for ord := 0; ord < int(replicas); ord++ {
		p := newStatefulSetPod(s, ord, current.Name)
		objs = append(objs, runningPod(fc, p.Name, p.Namespace, corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec},
			controllerRef(name, s.UID, "StatefulSet"), seed.repo, seed.digests[historyLen], now.Add(-importedAgo[historyLen-1])))
	}
	s.ResourceVersion = fc.api.nextRV()
	s.Status = appsv1.StatefulSetStatus{
		ObservedGeneration: s.Generation, Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas,
		CurrentReplicas: replicas, UpdatedReplicas: replicas, CurrentRevision: current.Name, UpdateRevision: current.Name,
		CollisionCount: &zero,
	}
	return append([]runtime.Object{s}, objs...), nil
}

// runningPod is a pod the kubelet has had Running and Ready since started.
func runningPod(fc *fakeCluster, name, ns string, t corev1.PodTemplateSpec, owner metav1.OwnerReference, repo, digest string, started time.Time) *corev1.Pod {
	at := metav1.NewTime(started)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV(),
			CreationTimestamp: at, Labels: t.Labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: t.Spec,
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort, HostIP: "10.0.0.1", PodIP: "10.128.0.10", StartTime: &at,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: at},
			},
		},
	}
	for _, c := range t.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: repo + "@" + digest, Ready: true, Started: boolPtr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}},
		})
	}
	return p
}

// podSuffix is a deterministic stand-in for generateName's random suffix.
func podSuffix(base string) string {
	return fakeopenshift.Digest(base, "pod", 0)[len("sha256:"):][:5]
}

// seedRBAC grants the demo users their access in env's namespace:
// alice deploys everywhere; bob deploys (and so may approve) where the env
// needs approvals and views elsewhere; carol only views. The bot itself
// (BotUser) gets the Helm chart's role, so scheduled imports, which run as
// the bot, pass the same access checks as in a real installation.
func seedRBAC(fc *fakeCluster, env config.Environment) []runtime.Object {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	view := []string{"get", "list", "watch"}
	rules := func(verbs []string, podVerbs []string) []rbacv1.PolicyRule {
		return []rbacv1.PolicyRule{
			{APIGroups: []string{imagev1.GroupName}, Resources: []string{"imagestreams", "imagestreamtags", "imagestreamimports"}, Verbs: verbs},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets", "controllerrevisions"}, Verbs: verbs},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: podVerbs},
			{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		}
	}
	ns := env.Namespace
	role := func(name string, rs []rbacv1.PolicyRule) *rbacv1.Role {
		return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV()}, Rules: rs}
	}
	bobRole := viewerRole
	if env.Approvals.Count > 0 {
		bobRole = deployerRole
	}
	return []runtime.Object{
		role(deployerRole, rules(all, []string{"get", "list", "watch", "delete"})),
		role(viewerRole, rules(view, view)),
		role(botRole, botRules()),
		bind(fc, ns, "alice", deployerRole),
		bind(fc, ns, "bob", bobRole),
		bind(fc, ns, "carol", viewerRole),
		bind(fc, ns, BotUser, botRole),
	}
}

// bind binds user to the Role roleName in ns.
func bind(fc *fakeCluster, ns, user, roleName string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + roleName, Namespace: ns, UID: fc.api.nextUID(), ResourceVersion: fc.api.nextRV()},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName},
	}
}

// botRules are charts/deploybot/templates/rbac-target.yaml's rules: the
// calls deploybot makes in an environment's namespace, and nothing else.
// Keep the two in step.
func botRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{imagev1.GroupName}, Resources: []string{"imagestreams"}, Verbs: []string{"get", "list", "watch", "update"}},
		{APIGroups: []string{imagev1.GroupName}, Resources: []string{"imagestreamimports"}, Verbs: []string{"create"}},
		{APIGroups: []string{imagev1.GroupName}, Resources: []string{"imagestreamtags"}, Verbs: []string{"create", "update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list"}},
		{APIGroups: []string{"apps"}, Resources: []string{"controllerrevisions"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "delete"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
	}
}
