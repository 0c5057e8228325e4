package fakeopenshift

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"

	imagev1 "github.com/openshift/api/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Registry is an in-memory container image registry: repositories with tags
// pointing at digests, every digest ever pushed to a repository (a
// registry keeps manifests reachable by digest after a tag moves on), and
// the labels of each image's config. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	tags     map[string]string            // "repo:tag" → digest
	digests  map[string]map[string]bool   // repo → digests pushed
	labels   map[string]map[string]string // digest → image config labels
	failures map[string]metav1.StatusReason
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		tags:     map[string]string{},
		digests:  map[string]map[string]bool{},
		labels:   map[string]map[string]string{},
		failures: map[string]metav1.StatusReason{},
	}
}

// Digest returns the deterministic digest the demo and test fixtures use for
// the n-th image pushed to repo:tag: sha256 of "<repo>:<tag>#<n>", so
// transcripts are stable across runs.
func Digest(repo, tag string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s:%s#%d", repo, tag, n)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Push points repo:tag at digest (sha256:<64 hex>), like `docker push`; an
// image pushed before keeps its labels.
func (r *Registry) Push(repo, tag, digest string) { r.PushImage(repo, tag, digest, nil) }

// PushImage points repo:tag at digest, an image whose config carries labels
// (org.opencontainers.image.revision and the like, as CI sets them); nil
// labels keep those the digest was pushed with before.
func (r *Registry) PushImage(repo, tag, digest string, labels map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[repo+":"+tag] = digest
	if r.digests[repo] == nil {
		r.digests[repo] = map[string]bool{}
	}
	r.digests[repo][digest] = true
	if labels != nil {
		r.labels[digest] = maps.Clone(labels)
	}
}

// Labels returns the config labels of the image digest (nil when it has
// none or was never pushed); the map is the caller's.
func (r *Registry) Labels(digest string) map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return maps.Clone(r.labels[digest])
}

// Fail makes pulls of ref (repo:tag or repo@sha256:...) fail the way the
// openshift-apiserver importer reports it: metav1.StatusReasonUnauthorized
// ("you may not have access to the container image"), StatusReasonNotFound
// (manifest unknown), anything else as that reason with a generic message.
func (r *Registry) Fail(ref string, reason metav1.StatusReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[ref] = reason
}

// Recover undoes Fail for ref.
func (r *Registry) Recover(ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, ref)
}

// Lookup resolves ref (repo:tag, or repo@sha256:...) to a digest. Errors are
// *apierrors.StatusError values shaped like the ones the openshift-apiserver
// importer puts into ImageStreamImport status.images[].status.
func (r *Registry) Lookup(ref string) (string, error) {
	repo, tag, digest, err := ParseReference(ref)
	if err != nil {
		return "", apierrors.NewBadRequest(fmt.Sprintf("invalid image reference %q: %v", ref, err))
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if reason, ok := r.failures[ref]; ok {
		return "", pullError(ref, reason)
	}
	if digest != "" {
		if r.digests[repo][digest] {
			return digest, nil
		}
		return "", pullError(ref, metav1.StatusReasonNotFound)
	}
	d, ok := r.tags[repo+":"+tag]
	if !ok {
		return "", pullError(ref, metav1.StatusReasonNotFound)
	}
	return d, nil
}

// pullError mirrors formatRepositoryError/formatPingError in
// openshift-apiserver pkg/image/apiserver/importer: unauthorized and
// manifest-unknown registry errors become Unauthorized and NotFound statuses.
func pullError(ref string, reason metav1.StatusReason) error {
	switch reason {
	case metav1.StatusReasonUnauthorized:
		return apierrors.NewUnauthorized(fmt.Sprintf("you may not have access to the container image %q", ref))
	case metav1.StatusReasonNotFound:
		return apierrors.NewNotFound(imagev1.Resource("dockerimage"), ref)
	default:
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  reason,
			Message: fmt.Sprintf("%s: registry error (%s)", ref, reason),
			Code:    500,
		}}
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ParseReference splits a registry image reference into repository, tag and
// digest: "quay.io/packit/worker:prod" → (quay.io/packit/worker, prod, ""),
// "quay.io/packit/worker@sha256:<hex>" → (quay.io/packit/worker, "", sha256:<hex>).
// A reference with neither means tag "latest", as for docker. A ":" before
// the last "/" is a registry port, not a tag.
func ParseReference(ref string) (repo, tag, digest string, err error) {
	if ref == "" {
		return "", "", "", fmt.Errorf("empty reference")
	}
	if strings.ContainsAny(ref, " \t\n") {
		return "", "", "", fmt.Errorf("reference contains whitespace")
	}
	name := ref
	if i := strings.Index(ref, "@"); i >= 0 {
		name, digest = ref[:i], ref[i+1:]
		if !digestRE.MatchString(digest) {
			return "", "", "", fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", digest)
		}
	}
	if i := strings.LastIndex(name, ":"); i >= 0 && i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
		if tag == "" {
			return "", "", "", fmt.Errorf("empty tag")
		}
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return "", "", "", fmt.Errorf("invalid repository %q", name)
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	if digest != "" {
		// repo:tag@digest pulls by digest; the tag is informational.
		tag = ""
	}
	return name, tag, digest, nil
}
