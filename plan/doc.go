// Package plan is deploybot's vocabulary of change, as plain data: the
// typed Command someone asked for and the Caller who asked, the Plan built
// from it (targets with from → to images, the API calls it needs, the policy
// that applies, its content hash), the Result and Progress of executing it,
// and the read models of cluster state that Plans are built from (image
// stream tags, workloads, revisions). It imports nothing of deploybot and no
// client-go, so everything that only talks about a Plan stays light.
package plan
