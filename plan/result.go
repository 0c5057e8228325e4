package plan

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
}

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
