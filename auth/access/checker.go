package access

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/deploybot/deploybot/kubeclient"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploybot/deploybot/plan"
)

// AuthenticatedGroup is the group the API server gives every authenticated
// user. A SubjectAccessReview does not add it by itself, so the Checker does:
// RBAC bindings to it (e.g. basic-user) apply to real requests of the user.
const AuthenticatedGroup = "system:authenticated"

// DefaultParallel bounds how many access reviews one Denied call runs at once.
const DefaultParallel = 8

// Checker asks each environment's cluster whether an identity may make API
// calls, with one LocalSubjectAccessReview per call in the call's namespace.
// That needs only the right to create localsubjectaccessreviews there (namespace
// admins have it), not cluster-admin.
type Checker struct {
	clients map[string]kubeclient.Interface
	// Parallel bounds concurrent reviews per Denied call.
	Parallel int
}

// NewChecker returns a Checker with one client per environment name.
func NewChecker(clients map[string]kubeclient.Interface) *Checker {
	return &Checker{clients: clients, Parallel: DefaultParallel}
}

// Denied returns the calls user (with groups)
// may not make on env's cluster, each with the API server's reason, in the
// order of calls; identical calls are asked once.
func (c *Checker) Denied(ctx context.Context, env, user string, groups []string, calls []plan.Access) ([]plan.Denial, error) {
	client, ok := c.clients[env]
	if !ok {
		return nil, fmt.Errorf("checking access on %s: no cluster client for environment %q", env, env)
	}
	if user == "" {
		return nil, fmt.Errorf("checking access on %s: no Kubernetes user to check", env)
	}
	if !slices.Contains(groups, AuthenticatedGroup) {
		groups = append(slices.Clip(groups), AuthenticatedGroup)
	}
	var unique []plan.Access
	for _, a := range calls {
		if !slices.Contains(unique, a) {
			unique = append(unique, a)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parallel := c.Parallel
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	reasons := make([]string, len(unique)) // "" = allowed
	// The first failure is the answer; the reviews it cancels fail after it.
	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(a plan.Access, err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = fmt.Errorf("checking whether %s may %s %s in %s: %w", user, a.Verb, resourceOf(a), a.Namespace, err)
			cancel()
		}
	}
	var wg sync.WaitGroup
	for i, a := range unique {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				fail(a, ctx.Err())
				return
			}
			defer func() { <-sem }()
			reason, err := review(ctx, client, user, groups, a)
			if err != nil {
				fail(a, err)
				return
			}
			reasons[i] = reason
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	var denials []plan.Denial
	for i, reason := range reasons {
		if reason != "" {
			denials = append(denials, plan.Denial{Access: unique[i], Reason: reason})
		}
	}
	return denials, nil
}

// review asks one LocalSubjectAccessReview and returns "" when allowed, or
// the reason it is not.
func review(ctx context.Context, client kubeclient.Interface, user string, groups []string, a plan.Access) (string, error) {
	lsar := &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace},
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace:   a.Namespace,
				Verb:        a.Verb,
				Group:       a.Group,
				Resource:    a.Resource,
				Subresource: a.Subresource,
				Name:        a.Name,
			},
		},
	}
	out, err := client.AuthorizationV1().LocalSubjectAccessReviews(a.Namespace).Create(ctx, lsar, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	st := out.Status
	if st.Allowed && !st.Denied {
		return "", nil
	}
	reason := st.Reason
	if reason == "" {
		reason = fmt.Sprintf("RBAC: no rule allows %s %s", a.Verb, resourceOf(a))
	}
	if st.EvaluationError != "" {
		reason += " (" + st.EvaluationError + ")"
	}
	return reason, nil
}

// resourceOf names the resource as RBAC rules do: resource or resource/subresource.
func resourceOf(a plan.Access) string {
	if a.Subresource != "" {
		return a.Resource + "/" + a.Subresource
	}
	return a.Resource
}
