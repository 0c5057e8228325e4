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

func statusCommand() Spec {
	return Spec{
		Name:     "status",
		Usage:    "status [ENV] [SERVICE...]",
		Summary:  "what runs where: image, source, scheduled import, last import error, workloads",
		Examples: []string{"status prod", "status stg worker service"},
		Who:      whoMapped,
		parse:    parseStatus,
		run:      runStatus,
	}
}

func parseStatus(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	env, svcs, err := p.envAndServices(fs.Args())
	if err != nil {
		return err
	}
	c.Env, c.Services = env, svcs
	return nil
}

func runStatus(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	e, err := envOf(d.Config, c.Env)
	if err != nil {
		return Output{}, err
	}
	svcs, err := servicesOf(d.Config, c.Services)
	if err != nil {
		return Output{}, err
	}
	out := Output{Title: fmt.Sprintf("status %s (namespace %s)", e.Name, e.Namespace)}
	sections := make([]Section, len(svcs))
	now := d.now()
	forEach(len(svcs), func(i int) { sections[i] = serviceStatus(ctx, d, now, e, svcs[i]) })
	out.Sections = sections
	return out, nil
}

// serviceStatus is one service's section. A service that cannot be read
// shows why instead of failing the whole reply.
func serviceStatus(ctx context.Context, d Deps, now time.Time, e *config.Environment, s *config.Service) Section {
	sec := Section{Heading: s.Name, Pre: true}
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		sec.Lines = append(sec.Lines, "error    "+err.Error())
		return sec
	}
	if ts.Current.Digest != "" {
		sec.Lines = append(sec.Lines, fmt.Sprintf("image    %s  imported %s", plan.ShortDigest(ts.Current.Digest), age(now, ts.Current.Created)))
	} else {
		sec.Lines = append(sec.Lines, "image    none imported yet")
	}
	sec.Lines = append(sec.Lines, "source   "+sourceText(ts, e, s))
	sec.Lines = append(sec.Lines, "import   scheduled "+onOff(ts.Scheduled))
	if ts.ImportError != "" {
		sec.Lines = append(sec.Lines, "error    last import failed: "+ts.ImportError)
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		sec.Lines = append(sec.Lines, "error    "+err.Error())
		return sec
	}
	if len(ws) == 0 {
		sec.Lines = append(sec.Lines, "no workloads follow "+streamOf(s)+":"+tagOf(e))
	}
	width := 0
	for _, w := range ws {
		width = max(width, len(w.Kind)+1+len(w.Name))
	}
	for _, w := range ws {
		line := fmt.Sprintf("%-*s  %d/%d ready  %s", width, strings.ToLower(w.Kind)+"/"+w.Name, w.Ready, w.Desired, rolloutText(w))
		if !followsTag(w, e, s) {
			line += "  (does not follow the tag)"
		}
		sec.Lines = append(sec.Lines, line)
	}
	return sec
}

// sourceText says where the tag's image comes from: tracking a registry tag,
// pinned to a digest (as revert and undo leave it), or something else.
func sourceText(ts plan.TagState, e *config.Environment, s *config.Service) string {
	switch {
	case ts.SpecFrom == "":
		return "no source (the tag has no spec)"
	case ts.SpecFromKind != "" && ts.SpecFromKind != "DockerImage":
		return fmt.Sprintf("%s %s", ts.SpecFromKind, ts.SpecFrom)
	case ts.Pinned():
		return fmt.Sprintf("pinned %s (`track %s %s` follows the registry again)", ts.SpecFrom, s.Name, e.Name)
	case ts.SpecFrom != s.Repository+":"+tagOf(e):
		return fmt.Sprintf("tracking %s (not the configured %s:%s)", ts.SpecFrom, s.Repository, tagOf(e))
	}
	return "tracking " + ts.SpecFrom
}

func rolloutText(w plan.Workload) string {
	switch {
	case w.Paused:
		return "paused"
	case w.Settled:
		return "settled"
	}
	return fmt.Sprintf("rolling (%d/%d updated)", w.Updated, w.Desired)
}
