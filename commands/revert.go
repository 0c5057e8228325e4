package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func revertCommand() Spec {
	return Spec{
		Name:    "revert",
		Usage:   "revert SERVICE [ENV] DIGEST [--dry-run]",
		Summary: "pin the stream tag to an image from its history (oc tag --source=docker REPO@DIGEST)",
		Examples: []string{
			"revert worker prod 1a2b3c4",
			"revert worker prod sha256:1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b",
		},
		Who:     "mapped users whose Kubernetes identity may update the env's image stream tags (imagestreamtags); then the env's policy:",
		Mutates: true,
		parse:   parseRevert,
		plan:    planRevert,
	}
}

// parseRevert reads SERVICE [ENV] DIGEST: the digest is always last.
func parseRevert(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	args := fs.Args()
	if len(args) < 2 {
		if len(args) == 1 {
			if _, isSvc := findService(p.cfg, args[0]); !isSvc {
				if _, err := parseDigest(args[0], ""); err == nil {
					return userErrorf("Which service? Give it before the digest. Services: %s.", listed(serviceNames(p.cfg)))
				}
			}
		}
		return userErrorf("Give the service and the digest to go back to; `images SERVICE ENV` lists the digests.")
	}
	last := args[len(args)-1]
	_, isEnv := findEnv(p.cfg, last)
	_, isSvc := findService(p.cfg, last)
	if isEnv || isSvc {
		return userErrorf("Which image? Give its digest last; `images SERVICE ENV` lists them.")
	}
	svc, env, err := p.serviceAndEnv(args[:len(args)-1])
	if err != nil {
		return err
	}
	s, _ := findService(p.cfg, svc)
	digest, err := parseDigest(args[len(args)-1], s.Repository)
	if err != nil {
		return err
	}
	c.Env, c.Services, c.Digest = env, []string{svc}, digest
	return nil
}

// planRevert pins the tag to an image of its history, like
// `oc tag --source=docker REPO@DIGEST NS/IS:TAG`: scheduled import goes off so
// the registry cannot move the tag away again.
func planRevert(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (plan.Plan, error) {
	e, s, err := serviceIn(d.Config, c)
	if err != nil {
		return plan.Plan{}, err
	}
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		return plan.Plan{}, err
	}
	if err := heldRefusal(e, s, ts); err != nil {
		return plan.Plan{}, err
	}
	ev, err := resolveDigest(ts, c.Digest, d)
	if err != nil {
		return plan.Plan{}, err
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		return plan.Plan{}, err
	}
	p := newPlan(plan.ActionPin, e)
	p.Targets = []plan.Target{pinTarget(ts, e, s, ev.Digest, workloadRefs(ws, e, s))}
	if lookup, ok := d.Cluster.(ImageLookup); ok && e.Kubernetes() {
		// What the image was built from, read-only from the registry (on
		// OpenShift the lookup would be an ImageStreamImport).
		if img, err := lookup.LookupImage(ctx, e.Name, s.Stream(), p.Targets[0].To.Ref); err == nil && img.Digest == ev.Digest {
			p.Targets[0].To.Revision, p.Targets[0].To.Source, p.Targets[0].To.Created = img.Revision, img.Source, img.Created
		}
	}
	p.Notes = pinNotes(p.Targets[0], ts, e, s)
	p.Access = planAccess(p)
	return p, nil
}

// pinTarget points the tag at REPOSITORY@digest with scheduled import off.
// It is unchanged only when the tag is pinned there already.
func pinTarget(ts plan.TagState, e *config.Environment, s *config.Service, digest string, ws []plan.WorkloadRef) plan.Target {
	ref := s.Repository + "@" + digest
	return plan.Target{
		Service:   s.Name,
		Stream:    s.Stream(),
		Tag:       e.ImageTag(),
		From:      currentImage(ts),
		To:        plan.Image{Ref: ref, Digest: digest},
		SpecFrom:  ref,
		Scheduled: false,
		Unchanged: ts.SpecFrom == ref && !ts.Scheduled && ts.Current.Digest == digest,
		Workloads: ws,
	}
}

// pinNotes tell the user that a pin outlives imports.
func pinNotes(t plan.Target, ts plan.TagState, e *config.Environment, s *config.Service) []string {
	if t.Unchanged {
		return []string{fmt.Sprintf("%s:%s is already pinned to %s.", t.Stream, t.Tag, t.SpecFrom)}
	}
	var notes []string
	if ts.Current.Digest == t.To.Digest {
		notes = append(notes, fmt.Sprintf("%s already runs %s; pinning keeps it there.", s.Name, plan.ShortDigest(t.To.Digest)))
	}
	return append(notes, fmt.Sprintf("The tag stays pinned, also through imports, until `track %s %s`.", s.Name, e.Name))
}

// resolveDigest finds the tag history entry a full digest or a hex prefix
// names. Not found lists the history; an ambiguous prefix lists the matches.
func resolveDigest(ts plan.TagState, digest string, d Deps) (plan.TagEvent, error) {
	var matches []plan.TagEvent
	seen := map[string]bool{}
	for _, ev := range ts.History {
		hex := strings.TrimPrefix(ev.Digest, "sha256:")
		ok := ev.Digest == digest
		if !isFullDigest(digest) {
			ok = strings.HasPrefix(hex, digest)
		}
		if ok && !seen[ev.Digest] {
			seen[ev.Digest] = true
			matches = append(matches, ev)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		out := Output{Private: true, Sections: []Section{{Lines: []string{
			fmt.Sprintf("No image in the history of %s:%s has digest %s.", ts.Stream, ts.Tag, digest),
		}}}}
		if len(ts.History) > 0 {
			out.Sections = append(out.Sections, Section{Heading: "History", Lines: historyLines(ts, d.now()), Pre: true})
		}
		return plan.TagEvent{}, &UserError{Output: out}
	}
	lines := []string{}
	for _, m := range matches {
		lines = append(lines, strings.TrimPrefix(m.Digest, "sha256:"))
	}
	return plan.TagEvent{}, &UserError{Output: Output{Private: true, Sections: []Section{
		{Lines: []string{fmt.Sprintf("Digest prefix %s matches %d images of %s:%s; give more characters.", digest, len(matches), ts.Stream, ts.Tag)}},
		{Heading: "Matches", Lines: lines, Pre: true},
	}}}
}
