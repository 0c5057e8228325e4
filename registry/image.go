package registry

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The OCI annotation keys, used as image config labels, that say where an
// image comes from.
const (
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelCreated  = "org.opencontainers.image.created"
)

// Image is what the registry says about one image.
type Image struct {
	// Ref is the reference as asked: REPO:TAG for Resolve, REPO@DIGEST for
	// Lookup.
	Ref        string
	Repository string // as asked, e.g. quay.io/packit/packit-worker
	Tag        string // empty for Lookup
	// Digest is the manifest's digest, sha256:<64 hex>. For a multi-arch
	// image it is the digest of the index, the one a pull of the tag gets on
	// every platform.
	Digest    string
	MediaType string // of the manifest or index

	// Labels are the image config's labels; for an index, those of its
	// linux/amd64 image, else of its first image.
	Labels   map[string]string
	Revision string    // org.opencontainers.image.revision, e.g. a git commit
	Source   string    // org.opencontainers.image.source, e.g. a repository URL
	Created  time.Time // org.opencontainers.image.created (RFC 3339); zero if absent or unreadable
}

// Pinned is the reference a workload should run: REPO:TAG@DIGEST (the tag
// kept for people reading it), or REPO@DIGEST when there is no tag.
func (i Image) Pinned() string {
	if i.Tag == "" {
		return i.Repository + "@" + i.Digest
	}
	return i.Repository + ":" + i.Tag + "@" + i.Digest
}

// withLabels fills the label fields from labels.
func (i Image) withLabels(labels map[string]string) Image {
	i.Labels = labels
	i.Revision = labels[LabelRevision]
	i.Source = labels[LabelSource]
	i.Created = time.Time{}
	if c := labels[LabelCreated]; c != "" {
		if t, err := time.Parse(time.RFC3339Nano, c); err == nil {
			i.Created = t
		}
	}
	return i
}

// labelSource picks the manifest of an index whose labels stand for the
// index: linux/amd64, else the first image that is not an attestation
// (buildx adds those as "unknown/unknown" entries).
func labelSource(manifests []v1.Descriptor) (v1.Descriptor, bool) {
	var first *v1.Descriptor
	for i, m := range manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if p := m.Platform; p != nil && p.OS == "linux" && p.Architecture == "amd64" {
			return m, true
		}
		if first == nil {
			first = &manifests[i]
		}
	}
	if first == nil {
		return v1.Descriptor{}, false
	}
	return *first, true
}
