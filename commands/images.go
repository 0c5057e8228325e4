package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

func imagesCommand() Spec {
	return Spec{
		Name:     "images",
		Usage:    "images SERVICE [ENV]",
		Summary:  "the image stream tag's history, newest first: digest, age, which one is current",
		Examples: []string{"images worker prod", "images packit-service stg"},
		Who:      whoMapped,
		parse:    parseServiceEnv,
		run:      runImages,
	}
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
	out := Output{Title: fmt.Sprintf("images %s:%s (namespace %s)", streamOf(s), tagOf(e), e.Namespace)}
	out.Sections = append(out.Sections, Section{Lines: []string{"source: " + sourceText(ts, e, s)}})
	if len(ts.History) == 0 {
		out.Sections = append(out.Sections, Section{Lines: []string{"Nothing has been imported into this tag yet."}})
		return out, nil
	}
	out.Sections = append(out.Sections, Section{Lines: historyLines(ts, d.now()), Pre: true})
	out.Sections = append(out.Sections, Section{Lines: []string{
		fmt.Sprintf("`revert %s %s DIGEST` pins one of these (7 characters are enough).", s.Name, e.Name),
	}})
	return out, nil
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
