package commands

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/deploybot/deploybot/plan"
)

// RenderPlan shows a Plan compactly, the same on every platform: one line per
// target (service: old → new), the workloads that follow it, the notes and
// what the request needs before it runs.
func RenderPlan(p plan.Plan) Output {
	out := Output{Title: fmt.Sprintf("Plan: %s %s (namespace %s)", p.Action, p.Env, p.Namespace)}
	if p.Action == plan.ActionObserved {
		out.Title = fmt.Sprintf("Changed in %s without deploybot (namespace %s)", p.Env, p.Namespace)
	}
	var lines []string
	for _, t := range p.Targets {
		if p.Action == plan.ActionRelease {
			lines = append(lines, releaseLines(p.Env, t)...)
			continue
		}
		lines = append(lines, targetLine(p.Action, t))
		rolls := p.Action != plan.ActionRollback && p.Action != plan.ActionHold && (p.Action != plan.ActionUnhold || t.From.Digest != t.To.Digest)
		if rolls && !t.Unchanged && len(t.Workloads) > 0 {
			lines = append(lines, "  rolls: "+workloadList(t.Workloads))
		}
		if b := builtFrom(t.To); b != "" && !t.Unchanged {
			lines = append(lines, "  "+b)
		}
		if ch := t.Changes; ch != nil && !t.Unchanged {
			lines = append(lines, changesLines(ch)...)
		}
		if len(t.DeletePods) > 0 {
			lines = append(lines, "  deletes stuck pods: "+strings.Join(t.DeletePods, ", "))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "no targets")
	}
	out.Sections = append(out.Sections, Section{Lines: lines, Pre: true, Units: true})
	if len(p.Notes) > 0 {
		out.Sections = append(out.Sections, Section{Lines: p.Notes})
	}
	if p.Action != plan.ActionObserved { // nobody asked: no policy applied
		out.Sections = append(out.Sections, Section{Lines: []string{policyText(p.Policy)}})
	}
	return out
}

// changesLines lists what an image change brings, newest first.
func changesLines(ch *plan.Changes) []string {
	if ch.Note != "" {
		return []string{"  commits: " + ch.Note}
	}
	n := len(ch.Commits) + ch.More
	noun := "commits"
	if n == 1 {
		noun = "commit"
	}
	lines := []string{fmt.Sprintf("  %d %s in %s %s..%s:", n, noun, ch.Repository, shortSHA(ch.From), shortSHA(ch.To))}
	if ch.Back {
		lines[0] = fmt.Sprintf("  goes back %d %s in %s (%s..%s undone):", n, noun, ch.Repository, shortSHA(ch.To), shortSHA(ch.From))
	}
	for _, c := range ch.Commits {
		line := "    " + shortSHA(c.SHA) + " " + clipText(c.Subject, 72)
		if c.Author != "" {
			line += " (" + c.Author + ")"
		}
		lines = append(lines, line)
	}
	if ch.More > 0 {
		more := fmt.Sprintf("    and %d more", ch.More)
		if ch.Compare != "" {
			more += ": " + ch.Compare
		}
		lines = append(lines, more)
	}
	return lines
}

// clipText cuts s to n runes with an ellipsis.
func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// builtFrom says where an image comes from, from its revision and source
// labels: "built from packit-service@3f2a9c1", or "" without a revision.
func builtFrom(img plan.Image) string {
	if img.Revision == "" {
		return ""
	}
	rev := shortSHA(img.Revision)
	if src := strings.TrimSuffix(strings.TrimSuffix(img.Source, "/"), ".git"); src != "" {
		return "built from " + src[strings.LastIndex(src, "/")+1:] + "@" + rev
	}
	return "built from revision " + rev
}

// releaseLines show one repository of a release: its stable branch old →
// new, the commits it gains and the images it builds.
func releaseLines(env string, t plan.Target) []string {
	switch {
	case t.From.Revision == "":
		return []string{t.Service + ": left out (see below)"}
	case t.Unchanged:
		return []string{fmt.Sprintf("%s: %s at %s, even with the rolling branch, skipped", t.Service, t.Branch, shortSHA(t.From.Revision))}
	}
	lines := []string{fmt.Sprintf("%s: %s %s → %s", t.Service, t.Branch, shortSHA(t.From.Revision), shortSHA(t.To.Revision))}
	if t.Changes != nil {
		lines = append(lines, changesLines(t.Changes)...)
	}
	if len(t.Builds) > 0 {
		lines = append(lines, fmt.Sprintf("  then waits for the %s images of %s", env, strings.Join(t.Builds, ", ")))
	} else {
		lines = append(lines, "  builds no image itself")
	}
	return lines
}

func targetLine(action plan.Action, t plan.Target) string {
	name := t.Service
	if action == plan.ActionRollback && len(t.Workloads) > 0 {
		name = workloadName(t.Workloads[0])
	}
	if t.Unchanged {
		return fmt.Sprintf("%s: %s (unchanged)", name, shortImage(t.From))
	}
	switch {
	case action == plan.ActionHold && t.Hold != nil:
		line := fmt.Sprintf("%s: held at %s", name, shortImage(t.From))
		if !t.Hold.Until.IsZero() {
			line += " until " + t.Hold.Until.UTC().Format("2006-01-02 15:04 MST") + ", then unheld by itself"
		}
		if len(t.Hold.Paused) > 0 || t.Hold.Scheduled {
			line += fmt.Sprintf("  (scheduled import %s → off, image triggers paused: %s)", onOff(t.Hold.Scheduled), listOrNone(t.Hold.Paused))
		}
		return line
	case action == plan.ActionUnhold && t.Hold != nil:
		line := fmt.Sprintf("%s: unheld at %s (%s)", name, shortImage(t.To), holdText(*t.Hold))
		if len(t.Hold.Paused) > 0 || t.Hold.Scheduled {
			line += fmt.Sprintf("  (scheduled import back %s, image triggers resumed: %s)", onOff(t.Hold.Scheduled), listOrNone(t.Hold.Paused))
		}
		return line
	}
	line := fmt.Sprintf("%s: %s → %s", name, shortImage(t.From), shortImage(t.To))
	switch action {
	case plan.ActionPin, plan.ActionPromote:
		line += "  (pinned, scheduled import off)"
	case plan.ActionTrack:
		line += fmt.Sprintf("  (tracking %s, scheduled import %s)", t.SpecFrom, onOff(t.Scheduled))
	case plan.ActionRollback:
		line += fmt.Sprintf("  (rollback to revision %d)", t.ToRevision)
	case plan.ActionObserved:
		if t.ChangedBy != "" {
			line += "  (by " + t.ChangedBy + ")"
		}
	}
	return line
}

// policyText says what a request needs before it runs, e.g. "needs: confirm
// by requester, 1 approval by someone else, expires in 1h".
func policyText(p plan.Policy) string {
	var needs []string
	if p.Confirm {
		needs = append(needs, "confirm by requester")
	}
	switch {
	case p.Approvals == 1:
		needs = append(needs, "1 approval by someone else")
	case p.Approvals > 1:
		needs = append(needs, fmt.Sprintf("%d approvals by others", p.Approvals))
	}
	if len(needs) == 0 {
		return "needs: nothing more, runs right away"
	}
	return fmt.Sprintf("needs: %s, expires in %s", strings.Join(needs, ", "), fmtDuration(p.Expiry))
}

func workloadName(w plan.WorkloadRef) string { return strings.ToLower(w.Kind) + "/" + w.Name }

func workloadList(ws []plan.WorkloadRef) string {
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = workloadName(w)
	}
	return strings.Join(names, ", ")
}

// shortImage is an image's short digest, or its reference when it has none.
func shortImage(img plan.Image) string {
	switch {
	case img.Digest != "":
		return plan.ShortDigest(img.Digest)
	case img.Ref != "":
		return shortRef(img.Ref)
	}
	return "none"
}

// shortRef shortens quay.io/packit/packit-worker@sha256:<64 hex> to
// packit-worker@<12 hex>; other references stay as they are.
func shortRef(ref string) string {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return ref
	}
	return repo[strings.LastIndex(repo, "/")+1:] + "@" + plan.ShortDigest(digest)
}

// imagesText lists a workload revision's container images, shortened.
func imagesText(images map[string]string) string {
	if len(images) == 1 {
		for _, ref := range images {
			return shortRef(ref)
		}
	}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + shortRef(images[n])
	}
	return strings.Join(parts, " ")
}

// age is how long ago t was, coarsely: 45s, 12m, 3h, 5d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// fmtDuration writes 1h, 90m → 1h30m, 45s without the zero units of
// time.Duration.String.
func fmtDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
