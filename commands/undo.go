package commands

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func undoCommand() Spec {
	return Spec{
		Name:    "undo",
		Usage:   "undo SERVICE [ENV] [--to-revision N] [--force] [--dry-run]",
		Summary: "roll back to the previous (or a given) revision; workloads that follow the stream tag go back through the tag",
		Examples: []string{
			"undo service prod",
			"undo worker prod --to-revision 3",
			"undo worker prod --force",
		},
		Who: "mapped users whose Kubernetes identity may make the calls the plan lists in the env's namespace " +
			"(imagestreamtags for triggered workloads, deployments/statefulsets patch otherwise, pods delete with --force); then the env's policy:",
		Mutates: true,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(new(revisionValue), "to-revision", "go back to revision `N` (0, the default, is the previous one)")
			fs.Bool("force", false, "also delete pods an OrderedReady StatefulSet is stuck on")
		},
		parse: parseUndo,
		plan:  planUndo,
	}
}

func parseUndo(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	if err := parseServiceEnv(p, fs, c); err != nil {
		return err
	}
	c.ToRevision = revisionFlag(fs, "to-revision")
	c.Force, _ = fs.GetBool("force")
	return nil
}

// undoState is what planning an undo reads from the cluster.
type undoState struct {
	e       *config.Environment
	s       *config.Service
	tag     plan.TagState
	follow  []plan.Workload // follow the stream tag through an image trigger
	plain   []plan.Workload // do not; rolled back like oc rollout undo
	stuck   map[string][]plan.StuckPod
	command plan.Command
}

// planUndo rolls the service back. The image-trigger controller re-applies
// the tag's image to a workload that follows the tag whenever its container
// image changes, so `oc rollout undo` on one is silently reverted; for those
// the undo pins the stream tag to the image of the chosen revision instead.
// Workloads without a trigger are rolled back to the revision.
func planUndo(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	e, s, err := serviceIn(d.Config, c)
	if err != nil {
		return plan.Plan{}, err
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		return plan.Plan{}, err
	}
	if len(ws) == 0 {
		return plan.Plan{}, userFail("No workloads follow %s:%s in %s, so there is nothing to undo.", s.Stream(), e.ImageTag(), e.Name)
	}
	u := undoState{e: e, s: s, stuck: map[string][]plan.StuckPod{}, command: c}
	for _, w := range ws {
		if followsTag(w, e, s) {
			u.follow = append(u.follow, w)
		} else {
			u.plain = append(u.plain, w)
		}
		if w.Kind == plan.KindStatefulSet && w.OrderedReady {
			pods, err := d.Cluster.StuckPods(ctx, e.Name, w.Name)
			if err != nil {
				return plan.Plan{}, fmt.Errorf("looking for stuck pods of statefulset %s in %s: %w", w.Name, e.Name, err)
			}
			if len(pods) > 0 {
				u.stuck[w.Name] = pods
			}
		}
	}
	var p plan.Plan
	if len(u.follow) > 0 {
		if u.tag, err = readTag(ctx, d, e, s); err != nil {
			return plan.Plan{}, err
		}
	} else if ts, err := readTag(ctx, d, e, s); err == nil {
		// A rollback needs no tag; one that cannot be read holds nothing.
		u.tag = ts
	}
	if err := heldRefusal(e, s, u.tag); err != nil {
		return plan.Plan{}, err
	}
	if len(u.follow) > 0 {
		p, err = u.planPin(ctx, d)
	} else {
		p, err = u.planRollback(ctx, d)
	}
	if err != nil {
		return plan.Plan{}, err
	}
	p.Access = planAccess(p)
	return p, nil
}

// planPin undoes through the stream tag: it is pinned to the image the
// chosen revision of the first following workload ran.
func (u undoState) planPin(ctx context.Context, d Deps) (plan.Plan, error) {
	ref := u.follow[0]
	revs, err := d.Cluster.Revisions(ctx, u.e.Name, ref.Kind, ref.Name)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("reading the history of %s %s in %s: %w", ref.Kind, ref.Name, u.e.Name, err)
	}
	// The trigger names the container whose image follows the tag; a
	// revision's images are keyed by container name.
	container := ""
	if t := followingTrigger(ref, u.e, u.s); t != nil {
		if c, ok := t.Container(); ok {
			container = c.Name
		}
	}
	imageOf := func(r plan.Revision) string {
		if img, ok := r.Images[container]; ok && container != "" {
			return img
		}
		if len(r.Images) == 1 {
			for _, img := range r.Images {
				return img
			}
		}
		return ""
	}
	stuck := u.stuckPods(u.follow)
	var chosen plan.Revision
	var why string
	switch {
	case u.command.ToRevision != 0:
		r, ok := findRevision(revs, u.command.ToRevision)
		if !ok {
			return plan.Plan{}, userFail("%s has no revision %d (it has %s); `history %s %s` lists them.",
				workloadKindName(ref), u.command.ToRevision, revisionNumbers(revs), u.s.Name, u.e.Name)
		}
		chosen, why = r, fmt.Sprintf("revision %d of %s", r.Number, workloadKindName(ref))
	case len(stuck) > 0:
		// A forced-rollback situation: the sets already roll back to the
		// tag's image but OrderedReady waits forever on the stuck pods.
		// Going back another revision would re-apply the image that failed.
		if !u.command.Force {
			return plan.Plan{}, u.stuckRefusal(stuck, plan.ShortDigest(u.tag.Current.Digest))
		}
		r, ok := currentRevision(ref, revs)
		if !ok {
			return plan.Plan{}, userFail("%s has no revisions recorded, so there is nothing to undo.", workloadKindName(ref))
		}
		chosen, why = r, fmt.Sprintf("the current revision %d of %s (stuck pods are deleted so they are recreated on it)", r.Number, workloadKindName(ref))
	default:
		cur, ok := currentRevision(ref, revs)
		found := false
		for i := len(revs) - 1; i >= 0; i-- {
			r := revs[i]
			if ok && r.Number >= cur.Number {
				continue
			}
			if dg := digestOf(imageOf(r)); dg != "" && dg != u.tag.Current.Digest {
				chosen, found = r, true
				break
			}
		}
		if !found {
			return plan.Plan{}, &UserError{Output: Output{Private: true, Sections: []Section{
				{Lines: []string{fmt.Sprintf("%s has no earlier revision with an image other than the current %s, so there is nothing to undo.",
					workloadKindName(ref), plan.ShortDigest(u.tag.Current.Digest))}},
				{Heading: workloadKindName(ref), Lines: revisionTable(ref, revs), Pre: true},
			}}}
		}
		why = fmt.Sprintf("revision %d of %s, the newest earlier revision with a different image", chosen.Number, workloadKindName(ref))
	}
	img := imageOf(chosen)
	digest := digestOf(img)
	if digest == "" {
		return plan.Plan{}, userFail("Revision %d of %s ran %q, which names no image digest, so the tag cannot be pinned to it.",
			chosen.Number, workloadKindName(ref), img)
	}

	var follows []plan.WorkloadRef
	for _, w := range u.follow {
		follows = append(follows, workloadRef(w, u.e, u.s))
	}
	t := pinTarget(u.tag, u.e, u.s, digest, follows)
	p := newPlan(plan.ActionPin, u.e)
	verb := "follows"
	if len(follows) > 1 {
		verb = "follow"
	}
	p.Notes = append(p.Notes, fmt.Sprintf("%s %s %s:%s through image.openshift.io/triggers, and the image-trigger controller would re-apply the tag's image after a rollout undo. "+
		"So this undo pins the tag to %s, the image of %s.", workloadList(follows), verb, t.Stream, t.Tag, plan.ShortDigest(digest), why))
	if len(u.follow) > 1 && u.command.ToRevision != 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("Revision numbers are those of %s (`history %s %s`).", workloadKindName(ref), u.s.Name, u.e.Name))
	}
	if u.command.Force {
		t.DeletePods = podNames(stuck)
	}
	if len(t.DeletePods) > 0 {
		t.Unchanged = false
	}
	p.Notes = append(p.Notes, pinNotes(t, u.tag, u.e, u.s)...)
	p.Notes = append(p.Notes, u.forceNotes(stuck)...)
	for _, w := range u.plain {
		p.Notes = append(p.Notes, fmt.Sprintf("%s does not follow the tag and is left as it is.", workloadKindName(w)))
	}
	p.Targets = []plan.Target{t}
	return p, nil
}

// planRollback rolls workloads without an image trigger back to a revision,
// like oc rollout undo (revision 0 is the previous one).
func (u undoState) planRollback(ctx context.Context, d Deps) (plan.Plan, error) {
	p := newPlan(plan.ActionRollback, u.e)
	for _, w := range u.plain {
		if w.Paused && w.Kind == plan.KindDeployment {
			// oc rollout undo refuses paused Deployments too.
			return plan.Plan{}, userFail("%s is paused, so it cannot be rolled back; resume it first (oc rollout resume deployment/%s).", workloadKindName(w), w.Name)
		}
		revs, err := d.Cluster.Revisions(ctx, u.e.Name, w.Kind, w.Name)
		if err != nil {
			return plan.Plan{}, fmt.Errorf("reading the history of %s %s in %s: %w", w.Kind, w.Name, u.e.Name, err)
		}
		cur, hasCur := currentRevision(w, revs)
		stuck := u.stuck[w.Name]
		var to plan.Revision
		switch {
		case u.command.ToRevision != 0:
			r, ok := findRevision(revs, u.command.ToRevision)
			if !ok {
				return plan.Plan{}, userFail("%s has no revision %d (it has %s); `history %s %s` lists them.",
					workloadKindName(w), u.command.ToRevision, revisionNumbers(revs), u.s.Name, u.e.Name)
			}
			to = r
		case len(stuck) > 0:
			// As in planPin: already rolled back, only the stuck pods are in the way.
			if !u.command.Force {
				return plan.Plan{}, u.stuckRefusal(map[string][]plan.StuckPod{w.Name: stuck}, "revision "+fmt.Sprint(cur.Number))
			}
			to = cur
		default:
			found := false
			for i := len(revs) - 1; i >= 0; i-- {
				if !hasCur || revs[i].Number < cur.Number {
					to, found = revs[i], true
					break
				}
			}
			if !found || !hasCur {
				return plan.Plan{}, userFail("%s has no previous revision to roll back to (it has %s).", workloadKindName(w), revisionNumbers(revs))
			}
		}
		t := plan.Target{
			Service:    u.s.Name,
			From:       mainImage(cur.Images, u.s),
			To:         mainImage(to.Images, u.s),
			Workloads:  []plan.WorkloadRef{workloadRef(w, u.e, u.s)},
			ToRevision: to.Number,
			Unchanged:  hasCur && to.Number == cur.Number,
		}
		if u.command.Force {
			t.DeletePods = podNames(map[string][]plan.StuckPod{w.Name: stuck})
		}
		if len(t.DeletePods) > 0 {
			t.Unchanged = false
		} else if t.Unchanged {
			p.Notes = append(p.Notes, fmt.Sprintf("%s is already at revision %d.", workloadKindName(w), to.Number))
		}
		p.Targets = append(p.Targets, t)
	}
	p.Notes = append(p.Notes, u.forceNotes(u.stuckPods(u.plain))...)
	return p, nil
}

// stuckPods are the stuck pods of the given workloads.
func (u undoState) stuckPods(ws []plan.Workload) map[string][]plan.StuckPod {
	out := map[string][]plan.StuckPod{}
	for _, w := range ws {
		if pods := u.stuck[w.Name]; len(pods) > 0 {
			out[w.Name] = pods
		}
	}
	return out
}

// stuckRefusal explains a forced-rollback situation and offers --force,
// which is never applied without being asked for.
func (u undoState) stuckRefusal(stuck map[string][]plan.StuckPod, target string) *UserError {
	lines := []string{fmt.Sprintf("%s is already rolling back to %s, but OrderedReady will not replace pods that never became Ready:", u.s.Name, target)}
	lines = append(lines, stuckLines(stuck)...)
	lines = append(lines, fmt.Sprintf("`undo %s %s --force` deletes them so the controller recreates them; `--to-revision N` goes back elsewhere.", u.s.Name, u.e.Name))
	return &UserError{Output: Output{Private: true, Sections: []Section{{Lines: lines}}}}
}

// forceNotes tell what --force does, or offer it.
func (u undoState) forceNotes(stuck map[string][]plan.StuckPod) []string {
	switch {
	case len(stuck) > 0 && u.command.Force:
		return append([]string{"--force deletes these stuck pods so the controller recreates them:"}, stuckLines(stuck)...)
	case len(stuck) > 0:
		return append(append([]string{"These pods are stuck and OrderedReady will not replace them:"}, stuckLines(stuck)...),
			fmt.Sprintf("Add --force to delete them as part of this undo: `undo %s %s --force`.", u.s.Name, u.e.Name))
	case u.command.Force:
		return []string{"--force: no pod is stuck now, so none is deleted. If one stays stuck after this undo, `undo " + u.s.Name + " " + u.e.Name + " --force` deletes it."}
	}
	return nil
}

func stuckLines(stuck map[string][]plan.StuckPod) []string {
	var lines []string
	for _, name := range sortedKeys(stuck) {
		for _, p := range stuck[name] {
			lines = append(lines, fmt.Sprintf("• %s of statefulset/%s, on revision %s: %s", p.Name, name, p.Revision, p.Reason))
		}
	}
	return lines
}

func podNames(stuck map[string][]plan.StuckPod) []string {
	var names []string
	for _, name := range sortedKeys(stuck) {
		for _, p := range stuck[name] {
			names = append(names, p.Name)
		}
	}
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// currentRevision is the revision the workload runs now: the one marked
// current, else the workload's own revision number, else the newest.
func currentRevision(w plan.Workload, revs []plan.Revision) (plan.Revision, bool) {
	for _, r := range revs {
		if isCurrent(w, r) {
			return r, true
		}
	}
	if len(revs) == 0 {
		return plan.Revision{}, false
	}
	return revs[len(revs)-1], true
}

// digestOf is the sha256 digest an image reference names, or "".
func digestOf(ref string) string {
	_, d, ok := strings.Cut(ref, "@")
	if !ok || !isFullDigest(d) {
		return ""
	}
	return d
}

// mainImage is the image of the service's container among a revision's:
// the only one, or the one from the service's repository.
func mainImage(images map[string]string, s *config.Service) plan.Image {
	pick := ""
	switch {
	case len(images) == 1:
		for _, ref := range images {
			pick = ref
		}
	default:
		for _, name := range sortedKeys(images) {
			ref := images[name]
			if strings.HasPrefix(ref, s.Repository+"@") || strings.HasPrefix(ref, s.Repository+":") {
				pick = ref
				break
			}
		}
		if pick == "" && len(images) > 0 {
			pick = images[sortedKeys(images)[0]]
		}
	}
	return plan.Image{Ref: pick, Digest: digestOf(pick)}
}
