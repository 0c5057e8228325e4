// Package e2e proves deploybot's cluster actions against a real, local
// Kubernetes control plane (internal/controlplane: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok), where fakes cannot show
// the truth: rollbacks compared with kubectl's own `rollout undo`, rollout
// progress read from watches, access checks compared with what the API
// server does when the user makes the call, ImageStreams served over real
// REST from a CustomResourceDefinition, and the file store's compare-and-swap
// across processes.
//
// The package has only tests. They share one control plane, started on first
// use and stopped by TestMain. Build the binaries first (a cold build takes
// longer than go test's default timeout):
//
//	export DEPLOYBOT_CONTROLPLANE_BIN="$(bash hack/controlplane/build.sh | tail -n1)"
//	go test -v ./e2e/
package e2e
