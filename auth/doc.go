// Package auth maps chat users to Kubernetes identities (Identify): a chat
// user without a mapping may only ask for help and whoami. Whether an
// identity may make the API calls a Plan needs is asked of the cluster by
// auth/access (one LocalSubjectAccessReview per call, so the cluster's RBAC
// stays the only source of truth); the approval rules live with the request
// lifecycle. auth imports no client-go, so the dispatcher stays light.
package auth
