// Package rbac makes internal/kubefake's clientset answer access reviews the
// way a real API server with the RBAC authorizer does, from the Roles,
// ClusterRoles, RoleBindings and ClusterRoleBindings in the fake's tracker.
package rbac
