package e2e

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/registrytest"
	"github.com/deploybot/deploybot/plan"
)

// promoteRuns numbers the runs of TestKubernetesPromote in this process.
var promoteRuns atomic.Int32

// TestKubernetesPromote: promote on real servers. Two plain Kubernetes
// envs share the registry repositories with their own tags; kwok makes
// the pods Ready, and kube-apiserver keeps their Ready transition times,
// which promote reads. While the image has run healthy for less than
// promote.healthyFor it is refused with how long it ran; then TO is
// pinned to FROM's exact digest, rolled and settled, and the API server
// shows TO's workloads on FROM's digest.
func TestKubernetesPromote(t *testing.T) {
	t.Parallel()
	cp := controlPlane(t)
	ctx := testContext(t, 10*time.Minute)
	admin := clientFor(t, cp.AdminConfig())
	reg := registrytest.Start(t)
	run := promoteRuns.Add(1)
	from, to := fmt.Sprintf("promo-stg-%d", run), fmt.Sprintf("promo-prod-%d", run)
	createNamespaces(ctx, t, cp, from, to)
	applyRBAC(ctx, t, admin, shopRBAC(from, to))

	host := reg.Host()
	stgWeb := pushImage(ctx, t, reg, webRepo, "stg", "2222222")
	stgWorker := pushImage(ctx, t, reg, workerRep, "stg", "2222222")
	prodWeb := pushImage(ctx, t, reg, webRepo, "prod", "1111111")
	prodWorker := pushImage(ctx, t, reg, workerRep, "prod", "1111111")
	ref := func(repo, tag, d string) string { return host + "/" + repo + ":" + tag + "@" + d }
	createShopWorkloads(ctx, t, admin, from, ref(webRepo, "stg", stgWeb), ref(workerRep, "stg", stgWorker), 2, 2, nil)
	createShopWorkloads(ctx, t, admin, to, ref(webRepo, "prod", prodWeb), ref(workerRep, "prod", prodWorker), 1, 2, nil)

	cfg := parseKubeConfig(t, fmt.Sprintf(`environments:
  - {name: stg, platform: kubernetes, namespace: %[1]s, tag: stg}
  - {name: prod, platform: kubernetes, namespace: %[2]s, tag: prod}
services:
  - name: web
    repository: %[3]s/shop/web
    workloads: [{kind: Deployment, name: web, container: web}]
  - name: worker
    repository: %[3]s/shop/worker
    workloads: [{kind: StatefulSet, name: worker, container: worker}]
registry:
  dockerConfig: %[4]s
  insecure: [%[3]s]
promote:
  healthyFor: 4s
identities:
  users:
    - {platform: terminal, id: alice, user: alice, groups: [deployers]}
`, from, to, host, writeFile(t, "dockerconfig.json", reg.DockerConfigJSON())))
	sb := newShopBot(t, cp, cfg)
	waitShopRBAC(ctx, t, cp, sb.checker, map[string]string{"stg": from, "prod": to})
	waitShopRolled(ctx, t, admin, from, ref(webRepo, "stg", stgWeb), ref(workerRep, "stg", stgWorker))
	waitShopRolled(ctx, t, admin, to, ref(webRepo, "prod", prodWeb), ref(workerRep, "prod", prodWorker))

	// Just rolled out: Ready for less than 4s.
	reply, id := sb.say(ctx, t, "promote worker stg prod")
	t.Logf("promote worker stg prod, right after the rollout:\n%s", reply)
	if id != "" || !strings.Contains(reply, "Not promoting worker "+plan.ShortDigest(stgWorker)+" from stg to prod:") ||
		!strings.Contains(reply, "has run healthy for 4s (promote.healthyFor)") {
		t.Fatalf("promote of pods Ready for less than healthyFor: #%s\n%s", id, reply)
	}

	// Once healthy long enough, the promotion pins prod to stg's digest.
	var final string
	waitFor(ctx, t, "promote worker stg prod to open", func() (bool, string) {
		reply, id = sb.say(ctx, t, "promote worker stg prod")
		return id != "", reply
	})
	t.Logf("promote worker stg prod, when opened:\n%s", reply)
	if !strings.Contains(reply, "Promotes what stg runs: "+plan.ShortDigest(stgWorker)+" on 1 workload, every pod Ready for") ||
		!strings.Contains(reply, "built from worker@2222222") {
		t.Errorf("the promote Plan:\n%s", reply)
	}
	final = sb.waitFinal(ctx, t, id)
	t.Logf("final:\n%s", final)
	if !strings.Contains(final, "succeeded") || !strings.Contains(final, "1/1 workloads settled") {
		t.Fatalf("promote did not succeed with the worker settled:\n%s", final)
	}
	pinned := host + "/" + workerRep + "@" + stgWorker
	got := readShop(ctx, t, admin, to)
	if got.worker != pinned || got.workerPin != pinned || got.web != ref(webRepo, "prod", prodWeb) {
		t.Fatalf("prod after promote: %s; want worker at and pinned to %s, web untouched", got, pinned)
	}
	waitShopRolled(ctx, t, admin, to, got.web, got.worker)
}
