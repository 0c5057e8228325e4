// Package access asks each environment's cluster whether a Kubernetes
// identity may make API calls: one LocalSubjectAccessReview per call in the
// call's namespace, which needs only the right to create
// localsubjectaccessreviews there (namespace admins have it), not
// cluster-admin. The request lifecycle and whoami consume it through their
// own small interfaces.
package access
