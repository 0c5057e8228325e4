package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/deploybot/deploybot/internal/controlplane"
)

// Namespaces of the control-plane row: one per environment, shared by every
// start; each start gets a store namespace of its own (footprint-state-*),
// so every replica wins the leader election at once rather than waiting for
// the Lease a stopped one left.
const (
	stgNamespace  = "footprint--stg"
	prodNamespace = "footprint--prod"
)

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (internal/controlplane; binaries from
// $DEPLOYBOT_CONTROLPLANE_BIN or hack/controlplane/build.sh) with their data
// under tmp, and creates the environments' namespaces. The reaper stops it.
func startControlPlane(ctx context.Context, r *reaper, tmp string) (*controlplane.ControlPlane, error) {
	cp, err := controlplane.StartProcess(ctx, filepath.Join(tmp, "controlplane"), controlplane.WithProgress(os.Stderr))
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	r.onExit(cp.Stop)
	for _, ns := range []string{stgNamespace, prodNamespace} {
		if err := cp.CreateNamespace(ctx, ns); err != nil {
			return nil, fmt.Errorf("preparing the control plane: %w", err)
		}
	}
	return cp, nil
}

// controlPlaneConfig is a deploybot config for the control plane: the
// packit layout of examples/packit.yaml (stg and prod, five services), both
// environments through the admin kubeconfig, the state in ConfigMaps of
// stateNS (store backend kubernetes, as the chart runs it in a cluster).
func controlPlaneConfig(kubeconfig, stateNS string) string {
	return fmt.Sprintf(`# Written by hack/footprint for one start of deploybot serve.
environments:
  - name: stg
    kubeconfig: %[1]q
    namespace: %[2]s
    tag: stg
    scheduled: true
    confirm: true
  - name: prod
    kubeconfig: %[1]q
    namespace: %[3]s
    tag: prod
    confirm: true
    approvals: {count: 1, expiry: 1h}
    schedule: "0 2 * * 2"
    timeZone: UTC
services:
  - {name: packit-service, aliases: [service], repository: quay.io/packit/packit-service}
  - {name: packit-worker, aliases: [worker], repository: quay.io/packit/packit-worker}
  - {name: packit-service-fedmsg, aliases: [fedmsg], repository: quay.io/packit/packit-service-fedmsg}
  - {name: packit-dashboard, aliases: [dashboard], repository: quay.io/packit/dashboard}
  - {name: tokman, repository: quay.io/packit/tokman}
identities:
  users:
    - {platform: slack, id: %[4]s/%[5]s, user: alice, groups: [packit-devs]}
execution: serviceaccount
store:
  backend: kubernetes
  namespace: %[6]s
`, kubeconfig, stgNamespace, prodNamespace, teamID, userID, stateNS)
}
