// Package cluster reads and changes OpenShift and Kubernetes state for
// deploybot: ImageStream tags (import, pin, track, history), the Deployments
// and StatefulSets that image triggers make follow them (history, rollback,
// stuck pods) and rollout progress by watch. It executes Plans and nothing
// else mutates a cluster.
package cluster
