package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

func imagesCommand() Spec {
	return Spec{
		Name:     "images",
		Usage:    "images SERVICE [ENV] [DIGEST]",
		Summary:  "the image stream tag's history, newest first: digest, age, which one is current; with DIGEST, that image's full digest and reference",
		Examples: []string{"images worker prod", "images packit-service stg", "images worker prod 1a2b3c4"},
		Who:      whoMapped,
		parse:    parseImages,
		run:      runImages,
	}
}

// parseImages reads "SERVICE [ENV] [DIGEST]": a last word that is neither
// an environment nor a service but looks like a digest selects one image.
func parseImages(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	args := fs.Args()
	var digestWord string
	if n := len(args); n > 0 && looksLikeDigest(args[n-1]) {
		_, isEnv := findEnv(p.cfg, args[n-1])
		_, isSvc := findService(p.cfg, args[n-1])
		if !isEnv && !isSvc {
			digestWord, args = args[n-1], args[:n-1]
		}
	}
	svc, env, err := p.serviceAndEnv(args)
	if err != nil {
		return err
	}
	c.Env, c.Services = env, []string{svc}
	if digestWord != "" {
		s, _ := findService(p.cfg, svc)
		if c.Digest, err = parseDigest(digestWord, s.Repository); err != nil {
			return err
		}
	}
	return nil
}

// looksLikeDigest: the word is meant as a digest (sha256:…, REPO@…, or
// seven or more hex characters), right or wrong, rather than as a name.
func looksLikeDigest(w string) bool {
	lw := strings.ToLower(w)
	return strings.Contains(lw, "sha256:") || strings.Contains(lw, "@") || len(lw) >= 7 && isHex(lw)
}

// parseServiceEnv is the parse of commands taking "SERVICE [ENV]" only.
func parseServiceEnv(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	svc, env, err := p.serviceAndEnv(fs.Args())
	if err != nil {
		return err
	}
	c.Env, c.Services = env, []string{svc}
	return nil
}

func runImages(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	e, s, err := serviceIn(d.Config, c)
	if err != nil {
		return Output{}, err
	}
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		return Output{}, err
	}
	if c.Digest != "" {
		return oneImage(ts, e, s, c.Digest, d)
	}
	out := Output{Title: fmt.Sprintf("images %s:%s (namespace %s)", s.Stream(), e.ImageTag(), e.Namespace)}
	out.Sections = append(out.Sections, Section{Lines: []string{"source: " + sourceText(ts, e, s)}})
	if len(ts.History) == 0 {
		out.Sections = append(out.Sections, Section{Lines: []string{"Nothing has been imported into this tag yet."}})
		return out, nil
	}
	out.Sections = append(out.Sections, Section{Lines: historyLines(ts, d.now()), Pre: true})
	if ts.Current.Ref != "" {
		out.Sections = append(out.Sections, Section{Heading: "Current image", Lines: []string{ts.Current.Ref}, Pre: true})
	}
	out.Sections = append(out.Sections, Section{Lines: []string{
		fmt.Sprintf("`revert %s %s DIGEST` pins one of these (7 characters are enough); `images %s %s DIGEST` shows one's full digest.", s.Name, e.Name, s.Name, e.Name),
	}})
	return out, nil
}

// oneImage is `images SERVICE ENV DIGEST`: one history entry in full, the
// digest and the image reference on lines of their own, for copying.
func oneImage(ts plan.TagState, e *config.Environment, s *config.Service, digest string, d Deps) (Output, error) {
	ev, err := resolveDigest(ts, digest, d)
	if err != nil {
		return Output{}, err
	}
	ref := ev.Ref
	if ref == "" {
		ref = s.Repository + "@" + ev.Digest
	}
	current := "no"
	if ev.Digest == ts.Current.Digest {
		current = "yes"
	}
	now := d.now()
	return Output{
		Title: fmt.Sprintf("image %s of %s:%s (namespace %s)", plan.ShortDigest(ev.Digest), s.Stream(), e.ImageTag(), e.Namespace),
		Sections: []Section{
			{Heading: "Digest", Lines: []string{ev.Digest}, Pre: true},
			{Heading: "Image", Lines: []string{ref}, Pre: true},
			{Lines: []string{
				fmt.Sprintf("imported %s (%s), current: %s", ev.Created.UTC().Format("2006-01-02 15:04:05 MST"), age(now, ev.Created), current),
				fmt.Sprintf("`revert %s %s %s` pins it.", s.Name, e.Name, ev.Digest),
			}},
		},
	}, nil
}

// historyLines is the tag's history table, newest first, the current image
// marked. A digest seen several times (re-imports) is listed each time.
func historyLines(ts plan.TagState, now time.Time) []string {
	lines := []string{fmt.Sprintf("  %-12s  %s", "DIGEST", "IMPORTED")}
	for i, ev := range ts.History {
		mark, note := " ", ""
		if i == 0 {
			mark, note = "*", "current"
		}
		lines = append(lines, strings.TrimRight(fmt.Sprintf("%s %-12s  %-9s  %s", mark, plan.ShortDigest(ev.Digest), age(now, ev.Created), note), " "))
	}
	return lines
}

func firstService(c plan.Command) string {
	if len(c.Services) == 0 {
		return ""
	}
	return c.Services[0]
}
