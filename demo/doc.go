// Package demo is the built-in demo cluster behind `deploybot chat --demo`:
// fake Kubernetes and OpenShift image API clientsets (internal/kubefake) seeded from a
// deploybot config (the packit layout of examples/packit.yaml), an
// in-memory registry with a short history per tag and one newer image not
// yet imported, RBAC for the demo users alice, bob and carol, and
// simulated controllers — the openshift image trigger controller
// (fakeopenshift), kube-controller-manager's deployment, ReplicaSet and
// StatefulSet controllers and garbage collector, and a kubelet — so that
// imports, pins and rollbacks roll workloads over a few seconds, and a
// broken image gets stuck the way it does on a real cluster.
//
// An environment with platform: kubernetes (examples/kubernetes.yaml) has
// no ImageStreams: its images live in a real OCI registry served in-process
// (go-containerregistry's pkg/registry on a loopback listener), which the
// bot reads with its own registry client under the config's host names,
// and its listed workloads run REPO:TAG@DIGEST with no image triggers.
//
// Each repository of the config with an HTTPS URL (examples/packit.yaml's
// packit repositories) is a go-git repository in memory with a fixed
// history, its rolling branch a few commits ahead of stable (git.go), and
// the seeded images of the services it builds carry revision labels from
// that history. Building a demo makes go-git's https transport serve those
// repositories in this process (githosting.go), so the bot's own git
// client fetches and pushes them by their real URLs; while the demo runs,
// its CI (ci.go) turns a push of a stable branch into new labelled images
// of that repository's services, as a release expects.
package demo
