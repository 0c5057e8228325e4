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
package demo
