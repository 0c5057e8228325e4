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
		Summary:  "what runs where: image, source, scheduled import, last import error, workloads (of every environment when ENV is left out)",
		Examples: []string{"status", "status prod", "status stg worker service", "status worker"},
		Who:      whoMapped,
		parse:    parseStatus,
		run:      runStatus,
	}
}

// parseStatus reads "[ENV] [SERVICE...]". Without an environment (and none
// from the channel or a one-environment config) Env stays empty: the
// overview of every environment, which is what people asking "status" want.
func parseStatus(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	env, svcs, err := p.givenEnvAndServices(fs.Args())
	if err != nil {
		return err
	}
	if env == "" {
		env, _ = p.defaultEnv()
	}
	c.Env, c.Services = env, svcs
	return nil
}

func runStatus(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	if c.Env == "" {
		return statusOverview(ctx, d, c)
	}
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
	if ts.Hold != nil {
		sec.Lines = append(sec.Lines, fmt.Sprintf("hold     %s (`unhold %s %s` ends it)", holdText(*ts.Hold), e.Name, s.Name))
	}
	if b := runningBuild(ctx, d, e, s, ts); b != "" {
		sec.Lines = append(sec.Lines, "build    "+b)
	}
	if e.Kubernetes() {
		sec.Lines = append(sec.Lines, registryStatus(ctx, d, now, e, s, ts)...)
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		sec.Lines = append(sec.Lines, "error    "+err.Error())
		return sec
	}
	if len(ws) == 0 {
		sec.Lines = append(sec.Lines, "no workloads follow "+s.Stream()+":"+e.ImageTag())
	}
	width := 0
	for _, w := range ws {
		width = max(width, len(w.Kind)+1+len(w.Name))
	}
	for _, w := range ws {
		line := fmt.Sprintf("%-*s  %d/%d ready  %s", width, strings.ToLower(w.Kind)+"/"+w.Name, w.Ready, w.Desired, rolloutText(w))
		if !e.Kubernetes() && !followsTag(w, e, s) { // on plain Kubernetes the bot itself keeps the listed workloads on the tag
			line += "  (does not follow the tag)"
		}
		sec.Lines = append(sec.Lines, line)
	}
	return sec
}

// runningBuild is what the running image was built from (its revision
// label), e.g. "built from packit-service@62391af": from the registry on
// plain Kubernetes, from the image metadata of an ImageStreamImport on
// OpenShift; both cached by digest, so a status asks once per image. An
// image that cannot be looked up shows nothing.
func runningBuild(ctx context.Context, d Deps, e *config.Environment, s *config.Service, ts plan.TagState) string {
	lookup, ok := d.Cluster.(ImageLookup)
	if !ok || ts.Current.Digest == "" {
		return ""
	}
	cur, err := lookup.LookupImage(ctx, e.Name, s.Stream(), s.Repository+"@"+ts.Current.Digest)
	if err != nil {
		return ""
	}
	return builtFrom(cur)
}

// registryStatus is what a plain Kubernetes environment's status adds from
// the registry (read-only, labels cached by digest): whether the tag has a
// newer image than the one running. On OpenShift the same question is an
// ImageStreamImport, which `import --dry-run` asks.
func registryStatus(ctx context.Context, d Deps, now time.Time, e *config.Environment, s *config.Service, ts plan.TagState) []string {
	var lines []string
	if ts.Pinned() {
		return lines
	}
	reg, err := d.Cluster.RegistryImage(ctx, e.Name, s.Stream(), e.ImageTag())
	switch {
	case err != nil:
		lines = append(lines, "registry "+err.Error())
	case reg.Digest != "" && reg.Digest != ts.Current.Digest:
		line := "registry has " + plan.ShortDigest(reg.Digest)
		if !reg.Created.IsZero() {
			line += ", built " + age(now, reg.Created)
		}
		if b := builtFrom(reg); b != "" {
			line += " (" + b + ")"
		}
		lines = append(lines, line+fmt.Sprintf(": `import %s %s`", e.Name, s.Name))
	}
	return lines
}

// statusOverview is `status` without an environment: one short section per
// environment, a line per service (image, source, workloads), read in
// parallel; `status ENV` has the details.
func statusOverview(ctx context.Context, d Deps, c plan.Command) (Output, error) {
	svcs, err := servicesOf(d.Config, c.Services)
	if err != nil {
		return Output{}, err
	}
	envs := d.Config.Environments
	if len(envs) == 0 {
		return Output{}, userFail("No environments are configured.")
	}
	width := 0
	for _, s := range svcs {
		width = max(width, len(s.Name))
	}
	now := d.now()
	lines := make([]string, len(envs)*len(svcs))
	forEach(len(lines), func(i int) {
		e, s := &envs[i/len(svcs)], svcs[i%len(svcs)]
		lines[i] = fmt.Sprintf("%-*s  %s", width, s.Name, serviceSummary(ctx, d, now, e, s))
	})
	header := fmt.Sprintf("%-*s  %-12s  %-8s  %-9s  %s", width, "SERVICE", "IMAGE", "SOURCE", "IMPORTED", "WORKLOADS")
	out := Output{Title: "status of every environment"}
	for i := range envs {
		e := &envs[i]
		out.Sections = append(out.Sections, Section{
			Heading: fmt.Sprintf("%s (namespace %s)", e.Name, e.Namespace),
			Lines:   append([]string{header}, lines[i*len(svcs):(i+1)*len(svcs)]...),
			Pre:     true,
		})
	}
	out.Sections = append(out.Sections, Section{Lines: []string{"`status ENV` shows one environment in full: sources, scheduled imports, import errors, each workload."}})
	return out, nil
}

// serviceSummary is a service's line of the overview: its image, where the
// tag's image comes from, and how its workloads are.
func serviceSummary(ctx context.Context, d Deps, now time.Time, e *config.Environment, s *config.Service) string {
	ts, err := readTag(ctx, d, e, s)
	if err != nil {
		return "error: " + err.Error()
	}
	img := "none yet"
	if ts.Current.Digest != "" {
		img = plan.ShortDigest(ts.Current.Digest)
	}
	source := "tracking"
	switch {
	case ts.SpecFrom == "" || ts.SpecFromKind != "" && ts.SpecFromKind != "DockerImage":
		source = "other"
	case ts.Pinned():
		source = "pinned"
	}
	parts := []string{fmt.Sprintf("%-12s", img), fmt.Sprintf("%-8s", source), fmt.Sprintf("%-9s", age(now, ts.Current.Created))}
	if ws, err := serviceWorkloads(ctx, d, e, s); err != nil {
		parts = append(parts, "error: "+err.Error())
	} else {
		parts = append(parts, workloadsSummary(ws))
	}
	if ts.ImportError != "" {
		parts = append(parts, "last import failed")
	}
	return strings.TrimRight(strings.Join(parts, "  "), " ")
}

// workloadsSummary is "3 workloads settled", or the ones that are not.
func workloadsSummary(ws []plan.Workload) string {
	var moving []string
	for _, w := range ws {
		if !w.Settled || w.Paused {
			moving = append(moving, fmt.Sprintf("%s %d/%d ready %s", strings.ToLower(w.Kind)+"/"+w.Name, w.Ready, w.Desired, rolloutText(w)))
		}
	}
	switch {
	case len(ws) == 0:
		return "no workloads"
	case len(moving) > 0:
		return strings.Join(moving, ", ")
	case len(ws) == 1:
		return "1 workload settled"
	}
	return fmt.Sprintf("%d workloads settled", len(ws))
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
	case ts.SpecFrom != s.Repository+":"+e.ImageTag():
		return fmt.Sprintf("tracking %s (not the configured %s:%s)", ts.SpecFrom, s.Repository, e.ImageTag())
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
