package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Action is what a Plan does.
type Action string

// The actions a Plan can carry.
const (
	// ActionImport imports the registry's current image into each target tag
	// (oc import-image).
	ActionImport Action = "import"
	// ActionPin points each target tag at repo@digest (oc tag --source=docker).
	ActionPin Action = "revert"
	// ActionTrack points each target tag back at the registry tag, restores the
	// env's scheduled import and imports (oc tag REPO:TAG).
	ActionTrack Action = "track"
	// ActionRollback rolls untriggered workloads back to a revision (oc rollout undo).
	ActionRollback Action = "undo"
	// ActionRelease moves git repositories' stable branches forward (git
	// branch -f stable SHA && git push), so that their CI builds the env's
	// images, and waits for those builds. Its targets are repositories.
	ActionRelease Action = "release"
	// ActionPromote pins each target tag at the digest another env runs,
	// settled and healthy (oc tag --source=docker REPO@DIGEST): ActionPin
	// with the digest taken from that env rather than the tag's history.
	ActionPromote Action = "promote"
	// ActionHold holds each target service where it is: on OpenShift the
	// tag's scheduled import goes off and the image triggers of the
	// workloads that follow it pause, so neither the bot nor the cluster
	// moves it; what was there is kept with the hold, for ActionUnhold to
	// restore exactly.
	ActionHold Action = "hold"
	// ActionUnhold ends each target's hold and restores the tag's
	// scheduled import and the triggers the hold paused.
	ActionUnhold Action = "unhold"
	// ActionObserved is no command: it records a change to an env that
	// the deploy feed saw made without the bot (a scheduled import, oc tag,
	// kubectl set image), so that its rollout is followed and shown once.
	// Its targets' From and To are the digests before and after, ChangedBy
	// who or what made the change. Nothing executes it.
	ActionObserved Action = "observed"
)

// PinsTag reports whether the action points the tag at repo@digest with
// scheduled import off (revert and promote).
func (a Action) PinsTag() bool { return a == ActionPin || a == ActionPromote }

// Plan is plain data describing exactly what will change. It is rendered in the
// confirmation prompt, hashed so an approval binds to exactly this content,
// authorized, stored, audited and executed. Nothing mutates a cluster except
// executing a stored, approved Plan.
type Plan struct {
	Action Action `json:"action"`
	Env    string `json:"env"`
	// Platform is PlatformKubernetes for a plain Kubernetes environment (the
	// bot sets the workloads' images itself); empty is OpenShift (image
	// streams and their triggers).
	Platform  string   `json:"platform,omitempty"`
	Namespace string   `json:"namespace"`
	Targets   []Target `json:"targets"`
	// Access lists every API call the Plan needs, checked for the requester.
	Access []Access `json:"access"`
	Policy Policy   `json:"policy"`
	// Notes are user-facing remarks, e.g. why an undo pins the stream tag.
	Notes []string `json:"notes,omitempty"`
}

// PlatformKubernetes marks a Plan for a plain Kubernetes environment.
const PlatformKubernetes = "kubernetes"

// Kubernetes reports whether the Plan is for a plain Kubernetes environment.
func (p Plan) Kubernetes() bool { return p.Platform == PlatformKubernetes }

// Target is one image stream tag (or one untriggered workload) the Plan
// changes; for a release, one repository whose stable branch moves.
type Target struct {
	// Service is the service; for a release, the repository's name.
	Service string `json:"service"`
	Stream  string `json:"stream,omitempty"`
	Tag     string `json:"tag,omitempty"`
	// From is what the tag (or workload) points at now.
	From Image `json:"from"`
	// To is what it will point at; for import, what the registry has now.
	To Image `json:"to"`
	// SpecFrom is the DockerImage reference the tag's spec will name (pin, track).
	SpecFrom string `json:"specFrom,omitempty"`
	// Scheduled is the importPolicy.scheduled the tag will have (pin, track).
	Scheduled bool `json:"scheduled,omitempty"`
	// Unchanged targets are shown but not acted upon.
	Unchanged bool `json:"unchanged,omitempty"`
	// Workloads follow this tag (or, for a rollback, are rolled back).
	Workloads []WorkloadRef `json:"workloads,omitempty"`
	// ToRevision is the workload revision a rollback restores.
	ToRevision int64 `json:"toRevision,omitempty"`
	// DeletePods are pods stuck on a bad revision that --force deletes.
	DeletePods []string `json:"deletePods,omitempty"`
	// Changes are the commits between the From and To images' revisions,
	// from the repository that builds the service, so approvers see what
	// they approve; for a release, the commits the stable branch gains.
	Changes *Changes `json:"changes,omitempty"`
	// Branch (release) is the branch that moves from From.Revision to
	// To.Revision: fast-forward only, and only while it is still at
	// From.Revision.
	Branch string `json:"branch,omitempty"`
	// Builds (release) are the services whose Env images the branch builds:
	// the release waits for each to be rebuilt from To.Revision.
	Builds []string `json:"builds,omitempty"`
	// Hold (hold, unhold) is the hold a hold places, or the one an unhold
	// ends (what it restores).
	Hold *Hold `json:"hold,omitempty"`
	// ChangedBy (observed) is who or what made the change, as the cluster
	// tells it (TagState.ChangedBy).
	ChangedBy string `json:"changedBy,omitempty"`
}

// Hold keeps a service on its image in an env: no import moves it (the
// bot's, the schedule's, a registry push's) until it is unheld. Scheduled
// and Paused are what the hold changed, so that unhold restores exactly
// that: the tag's importPolicy.scheduled before, and the workloads
// ("deployment/NAME") whose image triggers on the tag the hold paused.
type Hold struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since,omitzero"`
	// Until, when set, is when the hold ends by itself (hold --until): the
	// leader then unholds it, as the hold's approval covered.
	Until     time.Time `json:"until,omitzero"`
	Scheduled bool      `json:"scheduled,omitempty"`
	Paused    []string  `json:"paused,omitempty"`
	// Foreign marks a hold deploybot did not place (an annotation it cannot
	// read): unhold restores the env's configured scheduled import.
	Foreign bool `json:"foreign,omitempty"`
}

// Changes are the commits an image change brings: git log FROM..TO of
// Repository, newest first, at most MaxCommits of them and More besides;
// with Back, the change goes back: these are the commits TO..FROM it
// undoes. Note, instead, says why they could not be listed. Changes are
// shown, not hashed (Plan.Hash).
type Changes struct {
	Repository string   `json:"repository"`
	From       string   `json:"from"`
	To         string   `json:"to"`
	Commits    []Commit `json:"commits,omitempty"`
	More       int      `json:"more,omitempty"`
	Back       bool     `json:"back,omitempty"`
	// Compare links the whole range on GitHub or GitLab.
	Compare string `json:"compare,omitempty"`
	Note    string `json:"note,omitempty"`
}

// MaxCommits is how many commits a Plan lists per target.
const MaxCommits = 20

// Commit is one commit of Changes.
type Commit struct {
	SHA     string `json:"sha"`
	Subject string `json:"subject"`
	Author  string `json:"author,omitempty"`
}

// Image is a container image reference and its digest.
type Image struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Revision and Source are the image's org.opencontainers.image.revision
	// and .source labels, when the registry was read for them: the commit
	// and repository it was built from.
	Revision string `json:"revision,omitempty"`
	Source   string `json:"source,omitempty"`
	// Created is the image's org.opencontainers.image.created label.
	Created time.Time `json:"created,omitzero"`
}

// WorkloadRef names a workload in the Plan's namespace.
type WorkloadRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Triggered is true when the workload follows the stream tag through
	// image.openshift.io/triggers.
	Triggered bool `json:"triggered,omitempty"`
	// Containers names the containers whose image a plain Kubernetes Plan
	// sets (import, revert, track), joined by commas (container names are
	// DNS labels), so that a WorkloadRef stays comparable.
	Containers string `json:"containers,omitempty"`
}

// ContainerNames splits Containers.
func (w WorkloadRef) ContainerNames() []string {
	if w.Containers == "" {
		return nil
	}
	return strings.Split(w.Containers, ",")
}

// Access is one API call the Plan needs, as a SubjectAccessReview asks it.
type Access struct {
	Verb        string `json:"verb"`
	Group       string `json:"group,omitempty"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name,omitempty"`
}

// Policy is the env's approval policy as it applied when the Plan was built.
type Policy struct {
	Confirm   bool          `json:"confirm"`
	Approvals int           `json:"approvals"`
	Expiry    time.Duration `json:"expiry"`
}

// Hash is a stable content hash of the Plan: the SHA-256 of its JSON encoding
// (struct fields encode in declaration order, so equal Plans hash equal).
//
// What a Plan says about its targets' Changes (the commits between two
// revisions, read from git) is left out: it follows from the digests,
// which are in, and a git server that answers at opening and not at
// approval must not make the approval fail as "the cluster changed". So
// are its Notes: remarks for people, some quoting an error's text (a
// repository left out: "dial tcp …"), which may read differently the next
// time while the targets, which say what happens, stay the same.
func (p Plan) Hash() string {
	p.Notes = nil
	if slices.ContainsFunc(p.Targets, func(t Target) bool { return t.Changes != nil }) {
		p.Targets = slices.Clone(p.Targets)
		for i := range p.Targets {
			p.Targets[i].Changes = nil
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		// A Plan is plain data; Marshal cannot fail on it.
		panic("plan: encoding plan: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Pins are the commits a release Plan moves each repository to (even ones
// included, at their stable SHA), for Command.Pins; nil for other Plans.
func (p Plan) Pins() map[string]string {
	if p.Action != ActionRelease {
		return nil
	}
	pins := make(map[string]string, len(p.Targets))
	for _, t := range p.Targets {
		if t.To.Revision != "" {
			pins[t.Service] = t.To.Revision
		}
	}
	return pins
}

// Changes reports whether executing the Plan would change anything.
func (p Plan) Changes() bool {
	for _, t := range p.Targets {
		if !t.Unchanged {
			return true
		}
	}
	return false
}
