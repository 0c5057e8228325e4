package rbac

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/deploybot/deploybot/internal/kubefake"
	"github.com/deploybot/deploybot/kubeclient"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"
)

// InstallRBACReactor makes c answer creates of localsubjectaccessreviews and
// subjectaccessreviews like kube-apiserver does: the request is validated as
// pkg/registry/authorization/{local,}subjectaccessreview do, and the
// decision comes from the RBAC authorizer's rules
// (plugin/pkg/auth/authorizer/rbac), evaluated over the RBAC objects in c's
// tracker at the time of the review, with the same allow reasons.
//
// One deliberate difference: every user counts as a member of
// system:authenticated, as their real requests are, so bindings to that group
// (e.g. basic-user) apply.
func InstallRBACReactor(c *kubefake.Clientset) {
	tracker := c.Tracker()
	c.PrependReactor("create", "localsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		create, ok := action.(k8stesting.CreateAction)
		if !ok {
			return false, nil, nil
		}
		in, ok := create.GetObject().(*authorizationv1.LocalSubjectAccessReview)
		if !ok {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("not a LocalSubjectAccessReview: %T", create.GetObject()))
		}
		out, err := reviewLocal(tracker, action.GetNamespace(), in)
		return true, out, err
	})
	c.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		create, ok := action.(k8stesting.CreateAction)
		if !ok {
			return false, nil, nil
		}
		in, ok := create.GetObject().(*authorizationv1.SubjectAccessReview)
		if !ok {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("not a SubjectAccessReview: %T", create.GetObject()))
		}
		out, err := reviewCluster(tracker, in)
		return true, out, err
	})
}

// Reviewer answers access reviews directly from the RBAC objects in a
// tracker, as InstallRBACReactor's reactors do, but without going through
// the fake's reactor chain, which records every call it sees (Actions): a
// long demo session asks thousands of reviews, and each recorded one would
// be kept until the actions are cleared. It implements
// kubeclient.AuthorizationV1 for kubefake.Clientset.SetAuthorization.
type Reviewer struct{ tracker k8stesting.ObjectTracker }

var _ kubeclient.AuthorizationV1 = Reviewer{}

// NewReviewer returns a Reviewer over the RBAC objects in tracker.
func NewReviewer(tracker k8stesting.ObjectTracker) Reviewer { return Reviewer{tracker} }

// LocalSubjectAccessReviews implements kubeclient.AuthorizationV1.
func (r Reviewer) LocalSubjectAccessReviews(ns string) kubeclient.Creator[*authorizationv1.LocalSubjectAccessReview] {
	return creator[*authorizationv1.LocalSubjectAccessReview](func(in *authorizationv1.LocalSubjectAccessReview) (*authorizationv1.LocalSubjectAccessReview, error) {
		return reviewLocal(r.tracker, ns, in)
	})
}

// SubjectAccessReviews implements kubeclient.AuthorizationV1.
func (r Reviewer) SubjectAccessReviews() kubeclient.Creator[*authorizationv1.SubjectAccessReview] {
	return creator[*authorizationv1.SubjectAccessReview](func(in *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error) {
		return reviewCluster(r.tracker, in)
	})
}

// SelfSubjectAccessReviews implements kubeclient.AuthorizationV1; the demo
// has no "self" (no credentials), so it is refused as kube-apiserver refuses
// an anonymous request.
func (r Reviewer) SelfSubjectAccessReviews() kubeclient.Creator[*authorizationv1.SelfSubjectAccessReview] {
	return creator[*authorizationv1.SelfSubjectAccessReview](func(*authorizationv1.SelfSubjectAccessReview) (*authorizationv1.SelfSubjectAccessReview, error) {
		return nil, apierrors.NewUnauthorized("the demo cluster has no credentials to review itself")
	})
}

// creator is a kubeclient.Creator from a function.
type creator[T runtime.Object] func(T) (T, error)

func (c creator[T]) Create(_ context.Context, obj T, _ metav1.CreateOptions) (T, error) {
	return c(obj)
}

// reviewLocal answers a LocalSubjectAccessReview posted to namespace ns:
// validated as pkg/registry/authorization/localsubjectaccessreview does,
// decided by Evaluate.
func reviewLocal(tracker k8stesting.ObjectTracker, ns string, in *authorizationv1.LocalSubjectAccessReview) (*authorizationv1.LocalSubjectAccessReview, error) {
	out := in.DeepCopy()
	if ns == "" {
		return nil, apierrors.NewBadRequest("namespace is required on this type: ")
	}
	// The REST handler defaults the object's namespace from the URL and
	// refuses a different one.
	if out.Namespace == "" {
		out.Namespace = ns
	} else if out.Namespace != ns {
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	errs := validateSpec(out.Spec)
	if ra := out.Spec.ResourceAttributes; ra != nil && ra.Namespace != out.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("spec.resourceAttributes.namespace"), ra.Namespace, "must match metadata.namespace"))
	}
	if out.Spec.NonResourceAttributes != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec.nonResourceAttributes"), out.Spec.NonResourceAttributes, "disallowed on this kind of request"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: authorizationv1.GroupName, Kind: "LocalSubjectAccessReview"}, "", errs)
	}
	out.Status = Evaluate(tracker, out.Spec)
	return out, nil
}

// reviewCluster answers a SubjectAccessReview.
func reviewCluster(tracker k8stesting.ObjectTracker, in *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error) {
	out := in.DeepCopy()
	if errs := validateSpec(out.Spec); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: authorizationv1.GroupName, Kind: "SubjectAccessReview"}, "", errs)
	}
	out.Status = Evaluate(tracker, out.Spec)
	return out, nil
}

// validateSpec is ValidateSubjectAccessReviewSpec of pkg/apis/authorization/validation.
func validateSpec(spec authorizationv1.SubjectAccessReviewSpec) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	if (spec.ResourceAttributes == nil) == (spec.NonResourceAttributes == nil) {
		errs = append(errs, field.Invalid(p, spec.NonResourceAttributes, "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
	}
	if spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(p.Child("user"), spec.User, "at least one of user or group must be specified"))
	}
	return errs
}

var (
	rolesGVR               = rbacv1.SchemeGroupVersion.WithResource("roles")
	clusterRolesGVR        = rbacv1.SchemeGroupVersion.WithResource("clusterroles")
	roleBindingsGVR        = rbacv1.SchemeGroupVersion.WithResource("rolebindings")
	clusterRoleBindingsGVR = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")
)

// Evaluate decides a SubjectAccessReview spec over the RBAC objects in
// tracker, as the RBAC authorizer does: ClusterRoleBindings first, then the
// RoleBindings of the request's namespace; the first rule that allows the
// request gives the reason. When nothing allows it, the reason is empty unless
// a binding referred to a role that could not be found.
func Evaluate(tracker k8stesting.ObjectTracker, spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus {
	groups := spec.Groups
	if spec.User != "" && spec.User != "system:anonymous" && !slices.Contains(groups, "system:authenticated") {
		groups = append(slices.Clip(groups), "system:authenticated")
	}
	subj := subjectInfo{user: spec.User, groups: groups}
	var namespace string
	if spec.ResourceAttributes != nil {
		namespace = spec.ResourceAttributes.Namespace
	}
	var resolveErrs []error
	allows := func(rules []rbacv1.PolicyRule) bool {
		for i := range rules {
			if ruleAllows(spec, &rules[i]) {
				return true
			}
		}
		return false
	}

	crbs, err := listClusterRoleBindings(tracker)
	if err != nil {
		resolveErrs = append(resolveErrs, err)
	}
	for _, b := range crbs {
		i, ok := subj.appliesTo(b.Subjects, "")
		if !ok {
			continue
		}
		rules, err := roleRefRules(tracker, b.RoleRef, "")
		if err != nil {
			resolveErrs = append(resolveErrs, err)
			continue
		}
		if allows(rules) {
			return authorizationv1.SubjectAccessReviewStatus{
				Allowed: true,
				Reason: fmt.Sprintf("RBAC: allowed by ClusterRoleBinding %q of %s %q to %s",
					b.Name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(&b.Subjects[i], "")),
			}
		}
	}
	if namespace != "" {
		rbs, err := listRoleBindings(tracker, namespace)
		if err != nil {
			resolveErrs = append(resolveErrs, err)
		}
		for _, b := range rbs {
			i, ok := subj.appliesTo(b.Subjects, namespace)
			if !ok {
				continue
			}
			rules, err := roleRefRules(tracker, b.RoleRef, namespace)
			if err != nil {
				resolveErrs = append(resolveErrs, err)
				continue
			}
			if allows(rules) {
				return authorizationv1.SubjectAccessReviewStatus{
					Allowed: true,
					Reason: fmt.Sprintf("RBAC: allowed by RoleBinding %q of %s %q to %s",
						b.Name+"/"+b.Namespace, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(&b.Subjects[i], b.Namespace)),
				}
			}
		}
	}
	var st authorizationv1.SubjectAccessReviewStatus
	if len(resolveErrs) > 0 {
		st.Reason = "RBAC: " + aggregate(resolveErrs)
	}
	return st
}

// aggregate formats errors like apimachinery's utilerrors.NewAggregate.
func aggregate(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return "[" + strings.Join(msgs, ", ") + "]"
}

type subjectInfo struct {
	user   string
	groups []string
}

// appliesTo is appliesTo/appliesToUser of pkg/registry/rbac/validation.
func (s subjectInfo) appliesTo(subjects []rbacv1.Subject, namespace string) (int, bool) {
	for i, sub := range subjects {
		switch sub.Kind {
		case rbacv1.UserKind:
			if s.user == sub.Name {
				return i, true
			}
		case rbacv1.GroupKind:
			if slices.Contains(s.groups, sub.Name) {
				return i, true
			}
		case rbacv1.ServiceAccountKind:
			saNamespace := namespace
			if sub.Namespace != "" {
				saNamespace = sub.Namespace
			}
			if saNamespace != "" && s.user == "system:serviceaccount:"+saNamespace+":"+sub.Name {
				return i, true
			}
		}
	}
	return 0, false
}

// describeSubject is the one of pkg/registry/rbac/validation.
func describeSubject(s *rbacv1.Subject, bindingNamespace string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+ns)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// ruleAllows is RuleAllows of plugin/pkg/auth/authorizer/rbac with the
// matchers of pkg/apis/rbac/v1/evaluation_helpers.go.
func ruleAllows(spec authorizationv1.SubjectAccessReviewSpec, rule *rbacv1.PolicyRule) bool {
	if ra := spec.ResourceAttributes; ra != nil {
		combined := ra.Resource
		if ra.Subresource != "" {
			combined += "/" + ra.Subresource
		}
		return verbMatches(rule, ra.Verb) &&
			matchesOrAll(rule.APIGroups, ra.Group, rbacv1.APIGroupAll) &&
			resourceMatches(rule, combined, ra.Subresource) &&
			(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, ra.Name))
	}
	if nra := spec.NonResourceAttributes; nra != nil {
		return verbMatches(rule, nra.Verb) && nonResourceURLMatches(rule, nra.Path)
	}
	return false
}

func verbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	return matchesOrAll(rule.Verbs, verb, rbacv1.VerbAll)
}

func matchesOrAll(list []string, want, all string) bool {
	for _, v := range list {
		if v == all || v == want {
			return true
		}
	}
	return false
}

func resourceMatches(rule *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, r := range rule.Resources {
		if r == rbacv1.ResourceAll || r == combined {
			return true
		}
		// "*/scale" matches the scale subresource of every resource.
		if subresource != "" && len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && strings.HasSuffix(r, subresource) {
			return true
		}
	}
	return false
}

func nonResourceURLMatches(rule *rbacv1.PolicyRule, path string) bool {
	for _, u := range rule.NonResourceURLs {
		if u == rbacv1.NonResourceAll || u == path {
			return true
		}
		if strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")) {
			return true
		}
	}
	return false
}

// roleRefRules is GetRoleReferenceRules, with the lister's NotFound wording.
func roleRefRules(tracker k8stesting.ObjectTracker, ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		obj, err := tracker.Get(rolesGVR, namespace, ref.Name)
		if err != nil {
			return nil, notFound("role", ref.Name, err)
		}
		role, ok := obj.(*rbacv1.Role)
		if !ok {
			return nil, fmt.Errorf("role %s/%s is a %T", namespace, ref.Name, obj)
		}
		return role.Rules, nil
	case "ClusterRole":
		obj, err := tracker.Get(clusterRolesGVR, "", ref.Name)
		if err != nil {
			return nil, notFound("clusterrole", ref.Name, err)
		}
		role, ok := obj.(*rbacv1.ClusterRole)
		if !ok {
			return nil, fmt.Errorf("clusterrole %s is a %T", ref.Name, obj)
		}
		return role.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// notFound words a missing role as the authorizer's informer lister does.
func notFound(resource, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}, name)
	}
	return err
}

// The listers return bindings in no particular order; sort by name so that
// which binding an allow reason names does not vary between runs.

func listClusterRoleBindings(tracker k8stesting.ObjectTracker) ([]rbacv1.ClusterRoleBinding, error) {
	obj, err := tracker.List(clusterRoleBindingsGVR, rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"), "")
	if err != nil {
		return nil, fmt.Errorf("listing clusterrolebindings: %w", err)
	}
	list, ok := obj.(*rbacv1.ClusterRoleBindingList)
	if !ok {
		return nil, errors.New("listing clusterrolebindings: unexpected list type")
	}
	slices.SortFunc(list.Items, func(a, b rbacv1.ClusterRoleBinding) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

func listRoleBindings(tracker k8stesting.ObjectTracker, namespace string) ([]rbacv1.RoleBinding, error) {
	obj, err := tracker.List(roleBindingsGVR, rbacv1.SchemeGroupVersion.WithKind("RoleBinding"), namespace)
	if err != nil {
		return nil, fmt.Errorf("listing rolebindings in %s: %w", namespace, err)
	}
	list, ok := obj.(*rbacv1.RoleBindingList)
	if !ok {
		return nil, errors.New("listing rolebindings: unexpected list type")
	}
	slices.SortFunc(list.Items, func(a, b rbacv1.RoleBinding) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}
