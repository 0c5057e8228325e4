package plan

import (
	"strings"
	"time"
)

// Progress is one step of executing a Plan or following its rollouts; the bot
// turns a stream of them into live updates of one chat message.
type Progress struct {
	Service  string      `json:"service,omitempty"`
	Workload WorkloadRef `json:"workload,omitempty"`
	// Phase is one of the Phase* constants.
	Phase   string `json:"phase"`
	Desired int32  `json:"desired,omitempty"`
	Updated int32  `json:"updated,omitempty"`
	Ready   int32  `json:"ready,omitempty"`
	// Message says why, e.g. "packit-worker-0: ImagePullBackOff".
	Message string `json:"message,omitempty"`
}

// Progress phases.
const (
	PhaseChanged   = "changed"   // the tag (or workload) now points at the new image
	PhaseUnchanged = "unchanged" // nothing to do for this target
	PhaseFailed    = "failed"    // the change or the rollout failed; Message says why
	PhaseRolling   = "rolling"   // a workload is rolling out
	PhaseSettled   = "settled"   // a workload finished rolling out
	PhaseStuck     = "stuck"     // an OrderedReady StatefulSet waits on a pod that will never be Ready
)

// Result is what executing a Plan did, per target.
type Result struct {
	Targets  []TargetResult  `json:"targets"`
	Rollouts []RolloutResult `json:"rollouts,omitempty"`
	// Builds (release) are the images the pushed branches are to build:
	// what each registry tag held just before the push, for Follow to wait
	// for the new one. Follow reports them as rollouts of kind KindBuild.
	Builds []Build `json:"builds,omitempty"`
}

// Build is one image a release waits for: Service's Repository:Tag
// rebuilt from Commit. An image without a revision label counts as built
// once the tag has moved on from Before.
type Build struct {
	Service    string `json:"service"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Commit     string `json:"commit"`
	// Before is what the tag held just before the push; BeforeKnown is
	// false when the registry could not say (an image without a revision
	// label then never counts as built: it may be the old one).
	Before      Image `json:"before"`
	BeforeKnown bool  `json:"beforeKnown,omitempty"`
	// Pushed is when the branch was pushed: build times count from it.
	Pushed time.Time `json:"pushed,omitzero"`
}

// KindBuild is the WorkloadRef kind of a release's image builds in
// progress reports and rollout results.
const KindBuild = "Build"

// TargetResult is the outcome of one target.
type TargetResult struct {
	Service string `json:"service"`
	// Outcome is PhaseChanged, PhaseUnchanged or PhaseFailed.
	Outcome string `json:"outcome"`
	From    Image  `json:"from"`
	To      Image  `json:"to"`
	Error   string `json:"error,omitempty"`
}

// RolloutResult is how a workload's rollout ended.
type RolloutResult struct {
	Workload WorkloadRef `json:"workload"`
	// Outcome is PhaseSettled, PhaseFailed or PhaseStuck.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// Built are the services whose images a release saw built, in order:
// what its import offer imports.
func (r Result) Built() []string {
	var out []string
	for _, o := range r.Rollouts {
		if o.Workload.Kind == KindBuild && o.Outcome == PhaseSettled {
			out = append(out, o.Workload.Name)
		}
	}
	return out
}

// Failed reports whether any target or rollout failed.
func (r Result) Failed() bool {
	for _, t := range r.Targets {
		if t.Outcome == PhaseFailed {
			return true
		}
	}
	for _, o := range r.Rollouts {
		if o.Outcome != PhaseSettled {
			return true
		}
	}
	return false
}

// Summary says per target what an execution did, e.g. "packit-service
// changed b6d822630687 → 1be038bda583, tokman unchanged". Request messages,
// failure reasons and the report of a dead replica all use it.
func (r Result) Summary() string {
	var parts []string
	for _, t := range r.Targets {
		parts = append(parts, t.Summary())
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// FailureSummary names every target and rollout that failed, with why.
func (r Result) FailureSummary() string {
	var parts []string
	for _, t := range r.Targets {
		if t.Outcome == PhaseFailed {
			parts = append(parts, t.Service+": "+t.Error)
		}
	}
	for _, o := range r.Rollouts {
		if o.Outcome != PhaseSettled {
			parts = append(parts, strings.ToLower(o.Workload.Kind)+"/"+o.Workload.Name+": "+o.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

// Summary says what the target did: changed from → to, unchanged, or
// failed and why.
func (t TargetResult) Summary() string {
	switch t.Outcome {
	case PhaseChanged:
		return t.Service + " changed " + ImageChange(t.From, t.To)
	case PhaseUnchanged:
		return t.Service + " unchanged"
	case PhaseFailed:
		return t.Service + " failed: " + t.Error
	}
	return t.Service + " " + t.Outcome
}

// ImageChange is "from → to" by short digest, else by reference; "kept at
// X" when the image stays (a hold, a pin of the running image).
func ImageChange(from, to Image) string {
	if from.Digest != "" && from.Digest == to.Digest {
		return "kept at " + ShortDigest(to.Digest)
	}
	return ShortImage(from, "(none)") + " → " + ShortImage(to, "(unknown)")
}

// ShortImage shows an image by its short digest, else by its reference
// (workloads that run tag references have no digest), else as missing.
func ShortImage(i Image, missing string) string {
	switch {
	case i.Digest != "":
		return ShortDigest(i.Digest)
	case i.Ref != "":
		return i.Ref
	case i.Revision != "":
		// a release's branch: by short commit SHA
		return ShortSHA(i.Revision)
	}
	return missing
}
