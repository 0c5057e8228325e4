package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	routev1 "github.com/openshift/api/route/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/deploybot/deploybot/config"
)

// helm returns the pinned Helm CLI, building it once (hack/helm.sh).
var helm = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "helm.sh"), "--path").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("bash hack/helm.sh --path: %w\n%s", err, ee.Stderr)
		}
		return "", fmt.Errorf("bash hack/helm.sh --path: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
})

// runHelm runs the pinned Helm with args in the repository root.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, err := helm()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	// No user Helm config or repositories: the chart stands alone.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

const chartDir = "charts/deploybot"

// valueSets are the values the chart is linted and rendered with: its
// defaults and the examples in ci/.
var valueSets = []struct {
	name  string
	files []string
}{
	{"defaults", nil},
	{"openshift", []string{chartDir + "/ci/openshift-values.yaml"}},
	{"kubernetes", []string{chartDir + "/ci/kubernetes-values.yaml"}},
}

func valuesArgs(files []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	return args
}

func TestHelmLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			out, errOut, err := runHelm(t, append([]string{"lint", chartDir, "--strict"}, valuesArgs(vs.files)...)...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
			for _, l := range strings.Split(out, "\n") {
				// [INFO] lines are suggestions (an icon); warnings and errors fail.
				if strings.Contains(l, "[WARNING]") || strings.Contains(l, "[ERROR]") {
					t.Errorf("helm lint: %s", l)
				}
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

type policyPDB = policyv1.PodDisruptionBudget

// rendered is the chart's output as typed objects.
type rendered struct {
	objects []runtime.Object
}

var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := routev1.Install(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s).UniversalDeserializer()
}()

// render runs helm template for release "deploybot" in namespace
// "deploybot" and decodes every document strictly.
func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, errOut, err := runHelm(t, append([]string{"template", "deploybot", chartDir, "--namespace", "deploybot", "--kube-version", "1.33.0"}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, errOut)
	}
	return decodeManifests(t, out)
}

func decodeManifests(t *testing.T, manifests string) rendered {
	t.Helper()
	var r rendered
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the rendered YAML: %v", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding a rendered object: %v\n%s", err, doc)
		}
		r.objects = append(r.objects, obj)
	}
	return r
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// all returns the rendered objects of type T.
func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, r rendered) T {
	t.Helper()
	objs := all[T](r)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T rendered, want 1", len(objs), zero)
	}
	return objs[0]
}

// grant is one (scope, group, resource, verb) the RBAC allows.
type grant struct{ scope, group, resource, verb string }

func (g grant) String() string {
	return fmt.Sprintf("%s: %s %s/%s", g.scope, g.verb, g.group, g.resource)
}

// readmeGrants parses the RBAC table of the chart's README.
func readmeGrants(t *testing.T) []grant {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "<!-- rbac-table")
	table, _, ok2 := strings.Cut(table, "<!-- end rbac-table -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- rbac-table --> ... <!-- end rbac-table --> section")
	}
	clean := func(s string) string { return strings.Trim(strings.TrimSpace(s), "`") }
	var out []grant
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 5 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.TrimSpace(cells[0]) == "scope" {
			continue
		}
		scope, group := strings.TrimSpace(cells[0]), clean(cells[1])
		if group == "(core)" {
			group = ""
		}
		for _, res := range strings.Split(cells[2], ",") {
			for _, verb := range strings.Split(cells[3], ",") {
				out = append(out, grant{scope, group, clean(res), strings.TrimSpace(verb)})
			}
		}
	}
	return out
}

// ruleGrants flattens RBAC rules.
func ruleGrants(scope string, rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, grant{scope, g, res, v})
				}
			}
		}
	}
	return out
}

func sortedGrants(gs []grant) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestChartRBACIsTheREADMETable(t *testing.T) {
	want := readmeGrants(t)
	if len(want) < 20 {
		t.Fatalf("parsed %d grants from README.md's table; the parser or the table is broken", len(want))
	}
	r := render(t, "-f", chartDir+"/ci/openshift-values.yaml")
	var got []grant
	for _, role := range all[*rbacv1.Role](r) {
		scope := "environment"
		if role.Namespace == "deploybot" {
			scope = "release"
		}
		got = append(got, ruleGrants(scope, role.Rules)...)
	}
	for _, cr := range all[*rbacv1.ClusterRole](r) {
		got = append(got, ruleGrants("cluster (impersonate)", cr.Rules)...)
	}
	if g, w := strings.Join(sortedGrants(got), "\n"), strings.Join(sortedGrants(want), "\n"); g != w {
		t.Errorf("the rendered RBAC grants:\n%s\n\nREADME.md's table:\n%s", g, w)
	}
	for _, role := range all[*rbacv1.Role](r) {
		for _, rule := range role.Rules {
			if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
				t.Errorf("role %s/%s has a wildcard rule %+v", role.Namespace, role.Name, rule)
			}
			if slices.Contains(rule.Resources, "secrets") {
				t.Errorf("role %s/%s grants access to secrets", role.Namespace, role.Name)
			}
		}
	}
}

// restrictedProblems lists what in a pod spec the Kubernetes `restricted`
// Pod Security Standard (v1.30+) or OpenShift's restricted-v2 SCC would
// refuse. The e2e test has the API server's own admission say it too.
func restrictedProblems(spec corev1.PodSpec) []string {
	var ps []string
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		ps = append(ps, "host namespaces")
	}
	allowedVolumes := func(v corev1.Volume) bool {
		return v.ConfigMap != nil || v.EmptyDir != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil ||
			v.PersistentVolumeClaim != nil || v.CSI != nil || v.Ephemeral != nil
	}
	for _, v := range spec.Volumes {
		if !allowedVolumes(v) {
			ps = append(ps, "volume "+v.Name+" has a type restricted forbids")
		}
	}
	// restricted-v2 assigns the UID and fsGroup from the namespace's range.
	if psc.RunAsUser != nil {
		ps = append(ps, fmt.Sprintf("pod runAsUser %d is fixed (restricted-v2 assigns one)", *psc.RunAsUser))
	}
	if psc.FSGroup != nil {
		ps = append(ps, "pod fsGroup is fixed (restricted-v2 assigns one)")
	}
	podSeccomp := psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			ps = append(ps, c.Name+": runAsNonRoot is not true")
		}
		if sc.RunAsUser != nil {
			ps = append(ps, c.Name+": runAsUser is fixed")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			ps = append(ps, c.Name+": allowPrivilegeEscalation is not false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			ps = append(ps, c.Name+": privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			ps = append(ps, c.Name+": capabilities do not drop ALL")
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			ps = append(ps, c.Name+": adds capabilities")
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			sc.SeccompProfile == nil && !podSeccomp {
			ps = append(ps, c.Name+": seccomp profile is not RuntimeDefault")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			ps = append(ps, c.Name+": root filesystem is writable")
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				ps = append(ps, c.Name+": hostPort")
			}
		}
	}
	return ps
}

func TestChartRendering(t *testing.T) {
	type check func(t *testing.T, r rendered)
	deployment := func(t *testing.T, r rendered) *appsv1.Deployment { return one[*appsv1.Deployment](t, r) }
	container := func(t *testing.T, r rendered) corev1.Container {
		d := deployment(t, r)
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(d.Spec.Template.Spec.Containers))
		}
		return d.Spec.Template.Spec.Containers[0]
	}
	envOf := func(c corev1.Container, name string) *corev1.EnvVar {
		for i := range c.Env {
			if c.Env[i].Name == name {
				return &c.Env[i]
			}
		}
		return nil
	}
	roleNamespaces := func(r rendered) []string {
		var ns []string
		for _, role := range all[*rbacv1.Role](r) {
			if role.Name == "deploybot" {
				ns = append(ns, role.Namespace)
			}
		}
		sort.Strings(ns)
		return ns
	}
	validConfig := func(t *testing.T, r rendered) {
		cm := one[*corev1.ConfigMap](t, r)
		cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
		if err != nil {
			t.Fatalf("the rendered config.yaml does not load: %v\n%s", err, cm.Data["config.yaml"])
		}
		if cfg.Store.Backend != "kubernetes" {
			t.Errorf("store backend %q, want kubernetes for replicas", cfg.Store.Backend)
		}
	}
	passesRestricted := func(t *testing.T, r rendered) {
		if ps := restrictedProblems(deployment(t, r).Spec.Template.Spec); len(ps) > 0 {
			t.Errorf("the pod would not pass restricted / restricted-v2:\n%s", strings.Join(ps, "\n"))
		}
	}

	tests := []struct {
		name   string
		args   []string
		checks []check
	}{
		{"defaults", nil, []check{
			validConfig, passesRestricted,
			func(t *testing.T, r rendered) {
				d := deployment(t, r)
				if *d.Spec.Replicas != 2 {
					t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
				}
				aa := d.Spec.Template.Spec.Affinity
				if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
					aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
					t.Errorf("affinity %+v, want soft anti-affinity across nodes", aa)
				}
				pdb := one[*policyPDB](t, r)
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1", pdb.Spec)
				}
				if got := roleNamespaces(r); !slices.Equal(got, []string{"packit--prod", "packit--stg"}) {
					t.Errorf("target Roles in %v, want the two environments' namespaces", got)
				}
				if n := len(all[*rbacv1.ClusterRole](r)); n != 0 {
					t.Errorf("%d ClusterRoles without execution: impersonate, want none", n)
				}
				if n := len(all[*networkingv1.Ingress](r)) + len(all[*routev1.Route](r)); n != 0 {
					t.Errorf("%d Ingress/Routes by default, want none", n)
				}
			},
			func(t *testing.T, r rendered) {
				c := container(t, r)
				if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
					t.Errorf("liveness probe %+v, want GET /healthz", c.LivenessProbe)
				}
				if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
				}
				if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Exec != nil {
					t.Errorf("preStop %+v, want the kubelet's sleep action (no shell in the image)", c.Lifecycle)
				}
				if c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("resources %+v, want cpu and memory requests and a memory limit", c.Resources)
				}
				for _, name := range []string{"SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DISCORD_BOT_TOKEN", "DISCORD_PUBLIC_KEY", "DISCORD_APP_ID"} {
					e := envOf(c, name)
					if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "deploybot" ||
						e.ValueFrom.SecretKeyRef.Optional == nil || !*e.ValueFrom.SecretKeyRef.Optional {
						t.Errorf("env %s = %+v, want an optional secretKeyRef to the Secret deploybot", name, e)
					}
				}
				for _, name := range []string{"POD_NAME", "POD_NAMESPACE"} {
					if e := envOf(c, name); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
						t.Errorf("env %s = %+v, want the downward API", name, e)
					}
				}
				if !slices.Contains(c.Args, "--config=/etc/deploybot/config.yaml") || c.Args[0] != "serve" {
					t.Errorf("args %v, want serve with the mounted config", c.Args)
				}
			},
		}},
		{"registry pull secret", []string{"--set", "registryPullSecret=regcred"}, []check{
			validConfig, passesRestricted,
			func(t *testing.T, r rendered) {
				cm := one[*corev1.ConfigMap](t, r)
				cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
				if err != nil {
					t.Fatal(err)
				}
				const path = "/var/run/deploybot/registry/.dockerconfigjson"
				if cfg.Registry.DockerConfig != path {
					t.Errorf("config registry.dockerConfig %q, want %s", cfg.Registry.DockerConfig, path)
				}
				d := deployment(t, r)
				var vol *corev1.Volume
				for i, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == "registry-credentials" {
						vol = &d.Spec.Template.Spec.Volumes[i]
					}
				}
				if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "regcred" || len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != ".dockerconfigjson" {
					t.Errorf("registry volume %+v, want the Secret regcred's .dockerconfigjson", vol)
				}
				c := container(t, r)
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return m.Name == "registry-credentials" && m.MountPath+"/.dockerconfigjson" == path && m.ReadOnly
				}) {
					t.Errorf("mounts %+v, want the registry credentials read-only at %s", c.VolumeMounts, path)
				}
			},
		}},
		{"openshift", []string{"-f", chartDir + "/ci/openshift-values.yaml"}, []check{
			validConfig, passesRestricted,
			func(t *testing.T, r rendered) {
				routes := all[*routev1.Route](r)
				var paths []string
				for _, rt := range routes {
					paths = append(paths, rt.Spec.Path)
					if rt.Spec.TLS == nil || rt.Spec.TLS.Termination != routev1.TLSTerminationEdge || rt.Spec.To.Name != "deploybot" {
						t.Errorf("route %s: %+v, want edge TLS to the Service", rt.Name, rt.Spec)
					}
				}
				if !slices.Equal(paths, []string{"/slack/", "/discord/", "/registry/webhooks/"}) {
					t.Errorf("routes for %v, want only the webhook paths", paths)
				}
				crs := all[*rbacv1.ClusterRole](r)
				if len(crs) != 1 || len(all[*rbacv1.ClusterRoleBinding](r)) != 1 {
					t.Fatalf("%d ClusterRoles with execution: impersonate, want 1 and its binding", len(crs))
				}
				if got := sortedGrants(ruleGrants("cluster", crs[0].Rules)); !slices.Equal(got, []string{"cluster: impersonate /groups", "cluster: impersonate /users"}) {
					t.Errorf("impersonation ClusterRole grants %v", got)
				}
			},
		}},
		{"kubernetes", []string{"-f", chartDir + "/ci/kubernetes-values.yaml"}, []check{
			validConfig,
			func(t *testing.T, r rendered) {
				spec := deployment(t, r).Spec.Template.Spec
				if spec.SecurityContext.RunAsUser == nil || *spec.SecurityContext.RunAsUser != 65532 {
					t.Errorf("runAsUser %v, want the value 65532", spec.SecurityContext.RunAsUser)
				}
				// Only the fixed UID differs from what restricted-v2 admits.
				if ps := restrictedProblems(spec); len(ps) != 1 || !strings.Contains(ps[0], "runAsUser 65532 is fixed") {
					t.Errorf("problems %q, want only the fixed runAsUser", ps)
				}
				if spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
					t.Error("podAntiAffinity hard rendered no required term")
				}
				if img := container(t, r).Image; !strings.HasSuffix(img, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
					t.Errorf("image %s, want the digest", img)
				}
				// prod lives on another cluster: its RBAC is not this chart's.
				if got := roleNamespaces(r); !slices.Equal(got, []string{"apps-stg"}) {
					t.Errorf("target Roles in %v, want only apps-stg", got)
				}
				ing := one[*networkingv1.Ingress](t, r)
				var paths []string
				for _, p := range ing.Spec.Rules[0].HTTP.Paths {
					paths = append(paths, p.Path)
				}
				if !slices.Equal(paths, []string{"/slack/", "/discord/", "/registry/webhooks/"}) || len(ing.Spec.TLS) != 1 {
					t.Errorf("ingress paths %v tls %v, want only the webhook paths, with TLS", paths, ing.Spec.TLS)
				}
			},
		}},
		{"explicit target namespaces, no PDB, one replica", []string{"--set", "rbac.targetNamespaces={team-a,team-b}", "--set", "podDisruptionBudget.enabled=false",
			"--set", "replicaCount=1", "--set", "podAntiAffinity=", "--set", "preStopSleepSeconds=0"}, []check{
			passesRestricted,
			func(t *testing.T, r rendered) {
				if got := roleNamespaces(r); !slices.Equal(got, []string{"team-a", "team-b"}) {
					t.Errorf("target Roles in %v, want team-a, team-b", got)
				}
				if n := len(all[*policyPDB](r)); n != 0 {
					t.Errorf("%d PodDisruptionBudgets, want none", n)
				}
				d := deployment(t, r)
				if d.Spec.Template.Spec.Affinity != nil || d.Spec.Template.Spec.Containers[0].Lifecycle != nil {
					t.Errorf("affinity %+v lifecycle %+v, want neither", d.Spec.Template.Spec.Affinity, d.Spec.Template.Spec.Containers[0].Lifecycle)
				}
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.args...)
			for _, c := range tt.checks {
				c(t, r)
			}
		})
	}
}

// TestChartRefuses pins the values the chart refuses with a reason.
func TestChartRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a file store with replicas", []string{"--set", "config.store.backend=file"}, "with replicaCount > 1 use backend: kubernetes"},
		{"privilege escalation", []string{"--set", "securityContext.allowPrivilegeEscalation=true"}, "allowPrivilegeEscalation"},
		{"running as root", []string{"--set", "podSecurityContext.runAsNonRoot=false"}, "runAsNonRoot"},
		{"added capabilities", []string{"--set", "securityContext.capabilities.add={NET_ADMIN}"}, "capabilities/add"},
		{"no environments", []string{"--set", "config.environments=null"}, "environments"},
		{"a typo in a top-level value", []string{"--set", "replicas=3"}, "replicas"},
		{"an unpinned digest", []string{"--set", "image.digest=latest"}, "digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := runHelm(t, append([]string{"template", "deploybot", chartDir, "--namespace", "deploybot"}, tt.args...)...)
			if err == nil {
				t.Fatalf("helm template accepted %v", tt.args)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("helm template %v: %s\nwant it to mention %q", tt.args, errOut, tt.want)
			}
		})
	}
}
