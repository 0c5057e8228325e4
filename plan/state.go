package plan

import (
	"errors"
	"fmt"
	"time"
)

// TagState is what deploybot knows of one ImageStream tag (oc describe is/NAME).
type TagState struct {
	Stream string `json:"stream"`
	Tag    string `json:"tag"`
	// SpecFrom is spec.tags[].from.name when its kind is DockerImage, e.g.
	// quay.io/packit/packit-worker:prod (tracking) or ...@sha256:... (pinned).
	SpecFrom     string `json:"specFrom"`
	SpecFromKind string `json:"specFromKind"`
	// Scheduled is spec.tags[].importPolicy.scheduled.
	Scheduled bool `json:"scheduled"`
	// Current is status.tags[].items[0]; empty when nothing was imported yet.
	Current TagEvent `json:"current"`
	// History is status.tags[].items, newest first.
	History []TagEvent `json:"history"`
	// ImportError is the message of a False ImportSuccess condition.
	ImportError string `json:"importError,omitempty"`
	// Hold is the service's hold in the env, if it is held.
	Hold *Hold `json:"hold,omitempty"`
	// ChangedBy is who or what last changed the image the tag (or, on
	// plain Kubernetes, the workload) has, as far as the objects tell:
	// "scheduled import", "kubectl set image", "oc", "deploybot"; empty
	// when they do not say.
	ChangedBy string `json:"changedBy,omitempty"`
}

// Pinned reports whether the tag's spec names a digest rather than a registry tag.
func (t TagState) Pinned() bool { return IsDigestRef(t.SpecFrom) }

// TagEvent is one entry of an ImageStream tag's history.
type TagEvent struct {
	Created time.Time `json:"created"`
	// Ref is dockerImageReference, e.g. quay.io/packit/packit-worker@sha256:...
	Ref string `json:"ref"`
	// Digest is the image name, sha256:<64 hex>.
	Digest     string `json:"digest"`
	Generation int64  `json:"generation"`
}

// Workload is a Deployment or StatefulSet and its rollout state.
type Workload struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Triggers are the image.openshift.io/triggers entries.
	Triggers []Trigger `json:"triggers,omitempty"`
	// Images maps container name to image.
	Images   map[string]string `json:"images"`
	Desired  int32             `json:"desired"`
	Updated  int32             `json:"updated"`
	Ready    int32             `json:"ready"`
	Paused   bool              `json:"paused,omitempty"`
	Settled  bool              `json:"settled"`
	Revision int64             `json:"revision"`
	// OrderedReady is true for a StatefulSet with podManagementPolicy OrderedReady.
	OrderedReady bool `json:"orderedReady,omitempty"`
}

// Trigger is one entry of the image.openshift.io/triggers annotation.
type Trigger struct {
	From struct {
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
	} `json:"from"`
	FieldPath string `json:"fieldPath"`
	Paused    bool   `json:"paused,omitempty"`
}

// Revision is one entry of a workload's rollout history.
type Revision struct {
	Number      int64             `json:"number"`
	Images      map[string]string `json:"images"`
	ChangeCause string            `json:"changeCause,omitempty"`
	Created     time.Time         `json:"created"`
	Current     bool              `json:"current,omitempty"`
}

// StuckPod is a pod an OrderedReady StatefulSet will not replace by itself
// (a "forced rollback" situation): on an old revision and never Ready.
type StuckPod struct {
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Reason   string `json:"reason"`
}

// ImageRecord is one image a service's tag has had in an environment.
type ImageRecord struct {
	Env     string `json:"env"`
	Service string `json:"service"`
	// Digest is sha256:<64 hex>: the index digest of a multi-arch image.
	Digest string `json:"digest"`
	// Ref is the reference the workloads were set to, REPO:TAG@DIGEST.
	Ref string `json:"ref"`
	// Seen is when the bot first saw the digest (in the registry or
	// running).
	Seen time.Time `json:"seen"`
	// Imported is when a request of the bot last set the workloads to it;
	// zero if it never did. By is who asked (a Kubernetes user, or the
	// schedule's identity), Request the request ID.
	Imported time.Time `json:"imported,omitzero"`
	By       string    `json:"by,omitempty"`
	Request  string    `json:"request,omitempty"`
}

// Latest is the record's newest time: its import, else when it was seen.
func (r ImageRecord) Latest() time.Time {
	if r.Imported.After(r.Seen) {
		return r.Imported
	}
	return r.Seen
}

// Check refuses a record that could not have come from the bot.
func (r ImageRecord) Check() error {
	switch {
	case r.Env == "" || r.Service == "":
		return errors.New("an image record needs an environment and a service")
	case !IsDigest(r.Digest):
		return fmt.Errorf("image record %s/%s: %q is not a sha256 digest", r.Env, r.Service, r.Digest)
	case r.Seen.IsZero():
		return fmt.Errorf("image record %s/%s %s: no time seen", r.Env, r.Service, r.Digest)
	}
	return nil
}
