package commands

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// fakeCluster is the test double of Cluster: plain data, answered the way
// *cluster.Set answers. RegistryImage, like an ImageStreamImport with
// spec.import false, asks the registry about the tag's spec source, so a
// pinned tag's "registry image" is its pinned image.
type fakeCluster struct {
	tags      map[string]plan.TagState   // "env/stream:tag"
	registry  map[string]plan.Image      // registry reference → image
	broken    map[string]error           // registry reference → failure
	workloads map[string][]plan.Workload // env → all its workloads
	revisions map[string][]plan.Revision // "env/Kind/name", oldest first
	stuck     map[string][]plan.StuckPod // "env/name"
	calls     map[string]int             // method → count, to prove reads stay reads
	lookups   []string                   // LookupImage references asked

	// mu guards calls and lookups: commands read several services at once,
	// as *cluster.Set allows. The data maps are only read.
	mu sync.Mutex
}

func (f *fakeCluster) count(m string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[m]++
}

func (f *fakeCluster) Tag(_ context.Context, env, stream, tag string) (plan.TagState, error) {
	f.count("Tag")
	ts, ok := f.tags[env+"/"+stream+":"+tag]
	if !ok {
		return plan.TagState{}, fmt.Errorf("imagestreamtags.image.openshift.io %q not found", stream+":"+tag)
	}
	return ts, nil
}

func (f *fakeCluster) RegistryImage(ctx context.Context, env, stream, tag string) (plan.Image, error) {
	f.count("RegistryImage")
	ts, err := f.Tag(ctx, env, stream, tag)
	if err != nil {
		return plan.Image{}, err
	}
	return f.lookup(ts.SpecFrom)
}

func (f *fakeCluster) lookup(ref string) (plan.Image, error) {
	if err, ok := f.broken[ref]; ok {
		return plan.Image{}, registryError(ref, err.Error())
	}
	img, ok := f.registry[ref]
	if !ok {
		return plan.Image{}, registryError(ref, "manifest unknown")
	}
	return img, nil
}

// registryError is how the cluster reports a failed lookup: the per-image
// status of the ImageStreamImport.
func registryError(ref, msg string) error {
	return &cluster.ImportError{From: ref, Reason: "Unauthorized", Message: msg}
}

func (f *fakeCluster) TriggeredWorkloads(_ context.Context, env, stream, tag string) ([]plan.Workload, error) {
	f.count("TriggeredWorkloads")
	var out []plan.Workload
	for _, w := range f.workloads[env] {
		for _, t := range w.Triggers {
			// Like the real one: paused triggers are included.
			if t.Follows(w.Namespace, stream, tag) {
				out = append(out, w)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (f *fakeCluster) Workload(_ context.Context, env, kind, name string) (plan.Workload, error) {
	f.count("Workload")
	for _, w := range f.workloads[env] {
		if w.Kind == kind && w.Name == name {
			return w, nil
		}
	}
	return plan.Workload{}, fmt.Errorf("%s %q not found", kind, name)
}

func (f *fakeCluster) Revisions(_ context.Context, env, kind, name string) ([]plan.Revision, error) {
	f.count("Revisions")
	revs, ok := f.revisions[env+"/"+kind+"/"+name]
	if !ok {
		return nil, fmt.Errorf("%s %q not found", kind, name)
	}
	return revs, nil
}

func (f *fakeCluster) StuckPods(_ context.Context, env, name string) ([]plan.StuckPod, error) {
	f.count("StuckPods")
	return f.stuck[env+"/"+name], nil
}

// LookupImage implements ImageLookup.
func (f *fakeCluster) LookupImage(_ context.Context, env, stream, ref string) (plan.Image, error) {
	f.count("LookupImage")
	f.mu.Lock()
	f.lookups = append(f.lookups, ref)
	f.mu.Unlock()
	return f.lookup(ref)
}

// plainCluster hides LookupImage, as a Cluster without ImageLookup.
type plainCluster struct{ Cluster }

// digest is the deterministic digest the demo uses too:
// sha256:hex(sha256("<repo>:<tag>#<n>")).
func digest(repo, tag string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s:%s#%d", repo, tag, n)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func image(repo, tag string, n int) plan.Image {
	d := digest(repo, tag, n)
	return plan.Image{Ref: repo + "@" + d, Digest: d}
}

func trigger(stream, tag, container string) plan.Trigger {
	var t plan.Trigger
	t.From.Kind = "ImageStreamTag"
	t.From.Name = stream + ":" + tag
	t.FieldPath = fmt.Sprintf(`spec.template.spec.containers[?(@.name==%q)].image`, container)
	return t
}

// t0 is "now" in every test.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// testConfig is modelled on packit: stg imports on its own and needs a
// confirm; prod needs a confirm and one approval.
func testConfig() *config.Config {
	return &config.Config{
		Environments: []config.Environment{
			{Name: "stg", Namespace: "packit--stg", Tag: "stg", Scheduled: true, Confirm: true},
			{Name: "prod", Namespace: "packit--prod", Tag: "prod", Confirm: true,
				Approvals: config.Approvals{Count: 1, Expiry: config.Duration{Duration: 30 * time.Minute}},
				Schedule:  "0 2 * * 2", TimeZone: "Europe/Prague"},
		},
		Services: []config.Service{
			{Name: "packit-service", Aliases: []string{"service"}, Repository: "quay.io/packit/packit-service"},
			{Name: "packit-worker", Aliases: []string{"worker"}, Repository: "quay.io/packit/packit-worker"},
			{Name: "packit-dashboard", Aliases: []string{"dashboard"}, ImageStream: "packit-dashboard", Repository: "quay.io/packit/dashboard"},
			{Name: "tokman", Repository: "quay.io/packit/tokman"},
			{Name: "packit-service-fedmsg", Aliases: []string{"fedmsg"}, Repository: "quay.io/packit/packit-service-fedmsg",
				Workloads: []config.Workload{{Kind: "Deployment", Name: "packit-service-fedmsg"}}},
		},
		Repositories: []config.Repository{
			{Name: "ogr", URL: "https://github.com/packit/ogr.git", Env: "prod"},
			{Name: "packit-service", URL: "https://github.com/packit/packit-service.git", Env: "prod", Services: []string{"packit-service", "packit-worker"}},
		},
	}
}

// repoOf is the registry repository of a stream in testConfig.
var repoOf = map[string]string{
	"packit-service":        "quay.io/packit/packit-service",
	"packit-worker":         "quay.io/packit/packit-worker",
	"packit-dashboard":      "quay.io/packit/dashboard",
	"tokman":                "quay.io/packit/tokman",
	"packit-service-fedmsg": "quay.io/packit/packit-service-fedmsg",
}

// tagWith builds a tag tracking REPO:TAG whose history holds images n..1
// (newest, current, first); created an hour apart, the newest at t0-1h.
func tagWith(stream, tag string, scheduled bool, ns ...int) plan.TagState {
	repo := repoOf[stream]
	ts := plan.TagState{Stream: stream, Tag: tag, SpecFrom: repo + ":" + tag, SpecFromKind: "DockerImage", Scheduled: scheduled}
	for i, n := range ns {
		img := image(repo, tag, n)
		ts.History = append(ts.History, plan.TagEvent{Created: t0.Add(-time.Duration(i+1) * time.Hour), Ref: img.Ref, Digest: img.Digest, Generation: int64(len(ns) - i)})
	}
	if len(ts.History) > 0 {
		ts.Current = ts.History[0]
	}
	return ts
}

// workload is a settled workload of env following stream:tag when stream is set.
func workload(kind, name, ns, stream, tag, container string, image plan.Image, rev int64) plan.Workload {
	w := plan.Workload{Kind: kind, Name: name, Namespace: ns, Images: map[string]string{container: image.Ref},
		Desired: 2, Updated: 2, Ready: 2, Settled: true, Revision: rev}
	if stream != "" {
		w.Triggers = []plan.Trigger{trigger(stream, tag, container)}
	}
	if kind == plan.KindStatefulSet {
		w.OrderedReady = true
	}
	return w
}

// revs builds a history whose revision i+1 ran images[i]; the last is current.
func revs(container string, images ...plan.Image) []plan.Revision {
	var out []plan.Revision
	for i, img := range images {
		out = append(out, plan.Revision{Number: int64(i + 1), Images: map[string]string{container: img.Ref},
			ChangeCause: fmt.Sprintf("image update %d", i+1), Created: t0.Add(-time.Duration(len(images)-i) * time.Hour), Current: i == len(images)-1})
	}
	return out
}

// newFake is prod (and a little of stg) as the tests see it:
//   - packit-service:prod runs #2, the registry has #3; Deployment packit-service follows it (revisions #1, #2).
//   - packit-worker:prod runs #2 (history #2 #1 #0), registry #3; two
//     OrderedReady StatefulSets and Deployment packit-service-beat follow it.
//   - packit-dashboard:prod: the registry fails.
//   - tokman:prod is up to date.
//   - packit-service-fedmsg: a listed Deployment without a trigger (revisions #1, #2).
//   - stg: packit-worker:stg is pinned to #1 with scheduled import off (as oc tag leaves it).
func newFake() *fakeCluster {
	const ns = "packit--prod"
	svc, wrk := repoOf["packit-service"], repoOf["packit-worker"]
	f := &fakeCluster{
		tags: map[string]plan.TagState{
			"prod/packit-service:prod":        tagWith("packit-service", "prod", false, 2, 1),
			"prod/packit-worker:prod":         tagWith("packit-worker", "prod", false, 2, 1, 0),
			"prod/packit-dashboard:prod":      tagWith("packit-dashboard", "prod", false, 1),
			"prod/tokman:prod":                tagWith("tokman", "prod", false, 4),
			"prod/packit-service-fedmsg:prod": tagWith("packit-service-fedmsg", "prod", false, 2, 1),
			"stg/packit-service:stg":          tagWith("packit-service", "stg", true, 5),
			"stg/packit-worker:stg":           tagWith("packit-worker", "stg", false, 1),
		},
		registry: map[string]plan.Image{
			svc + ":prod":                image(svc, "prod", 3),
			wrk + ":prod":                image(wrk, "prod", 3),
			"quay.io/packit/tokman:prod": image("quay.io/packit/tokman", "prod", 4),
			"quay.io/packit/packit-service-fedmsg:prod": image("quay.io/packit/packit-service-fedmsg", "prod", 2),
			svc + ":stg":                      image(svc, "stg", 5),
			wrk + ":stg":                      image(wrk, "stg", 2),
			wrk + "@" + digest(wrk, "stg", 1): image(wrk, "stg", 1),
		},
		broken: map[string]error{
			"quay.io/packit/dashboard:prod": fmt.Errorf("unauthorized: access to the requested resource is not authorized"),
		},
		workloads: map[string][]plan.Workload{
			"prod": {
				workload(plan.KindDeployment, "packit-service", ns, "packit-service", "prod", "packit-service", image(svc, "prod", 2), 2),
				workload(plan.KindStatefulSet, "packit-worker-short-running", ns, "packit-worker", "prod", "packit-worker", image(wrk, "prod", 2), 3),
				workload(plan.KindStatefulSet, "packit-worker-long-running", ns, "packit-worker", "prod", "packit-worker", image(wrk, "prod", 2), 3),
				workload(plan.KindDeployment, "packit-service-beat", ns, "packit-worker", "prod", "beat", image(wrk, "prod", 2), 7),
				workload(plan.KindDeployment, "packit-dashboard", ns, "packit-dashboard", "prod", "dashboard", image("quay.io/packit/dashboard", "prod", 1), 1),
				workload(plan.KindDeployment, "tokman", ns, "tokman", "prod", "tokman", image("quay.io/packit/tokman", "prod", 4), 1),
				workload(plan.KindDeployment, "packit-service-fedmsg", ns, "", "", "fedmsg", image("quay.io/packit/packit-service-fedmsg", "prod", 2), 2),
			},
			"stg": {
				workload(plan.KindStatefulSet, "packit-worker", "packit--stg", "packit-worker", "stg", "packit-worker", image(wrk, "stg", 1), 1),
			},
		},
		revisions: map[string][]plan.Revision{
			"prod/Deployment/packit-service":               revs("packit-service", image(svc, "prod", 1), image(svc, "prod", 2)),
			"prod/StatefulSet/packit-worker-short-running": revs("packit-worker", image(wrk, "prod", 0), image(wrk, "prod", 1), image(wrk, "prod", 2)),
			"prod/StatefulSet/packit-worker-long-running":  revs("packit-worker", image(wrk, "prod", 0), image(wrk, "prod", 1), image(wrk, "prod", 2)),
			"prod/Deployment/packit-service-beat":          revs("beat", image(wrk, "prod", 1), image(wrk, "prod", 2)),
			"prod/Deployment/packit-service-fedmsg":        revs("fedmsg", image("quay.io/packit/packit-service-fedmsg", "prod", 1), image("quay.io/packit/packit-service-fedmsg", "prod", 2)),
			"stg/StatefulSet/packit-worker":                revs("packit-worker", image(wrk, "stg", 1)),
		},
	}
	// Pin stg's worker tag to #1, as revert leaves it.
	ts := f.tags["stg/packit-worker:stg"]
	ts.SpecFrom = wrk + "@" + digest(wrk, "stg", 1)
	f.tags["stg/packit-worker:stg"] = ts
	return f
}

func testDeps(c Cluster) Deps {
	return Deps{Config: testConfig(), Cluster: c, Access: &fakeAccess{}, Now: func() time.Time { return t0 }}
}

// fakeAccess denies a user the calls that match one listed for them (an
// empty Namespace or Name in the list matches any).
type fakeAccess struct {
	deny map[string][]plan.Access // user → calls denied
}

func (a *fakeAccess) Denied(_ context.Context, env, user string, groups []string, calls []plan.Access) ([]plan.Denial, error) {
	var out []plan.Denial
	for _, c := range calls {
		for _, d := range a.deny[user] {
			if c.Verb == d.Verb && c.Resource == d.Resource && (d.Namespace == "" || c.Namespace == d.Namespace) && (d.Name == "" || c.Name == d.Name) {
				out = append(out, plan.Denial{Access: c, Reason: "RBAC: not allowed"})
				break
			}
		}
	}
	return out, nil
}

// short is the display form of digest(repo, tag, n).
func short(repo, tag string, n int) string { return plan.ShortDigest(digest(repo, tag, n)) }
