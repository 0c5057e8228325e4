// Package auth decides who may do what: it maps chat users to Kubernetes
// identities (Identify), asks the cluster whether an identity may make the
// API calls a Plan needs (Checker, one LocalSubjectAccessReview per call, so
// the cluster's RBAC stays the only source of truth), and applies the
// environment's approval policy to confirm, approve, deny and cancel clicks.
package auth
