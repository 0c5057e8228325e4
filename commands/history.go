package commands

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

func historyCommand() Spec {
	return Spec{
		Name:     "history",
		Usage:    "history SERVICE [ENV] [--revision N]",
		Summary:  "rollout history of the service's workloads: revisions, images, change-cause",
		Examples: []string{"history service prod", "history worker prod --revision 3"},
		Who:      whoMapped,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(new(revisionValue), "revision", "show revision `N` in detail")
		},
		parse: parseHistory,
		run:   runHistory,
	}
}

func parseHistory(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	if err := parseServiceEnv(p, fs, c); err != nil {
		return err
	}
	c.Revision = revisionFlag(fs, "revision")
	return nil
}

// revisionValue is a revision number flag with a message users understand.
type revisionValue int64

func (r *revisionValue) String() string { return strconv.FormatInt(int64(*r), 10) }
func (r *revisionValue) Type() string   { return "N" }
func (r *revisionValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || n < 0 {
		return errors.New("want a revision number such as 3")
	}
	*r = revisionValue(n)
	return nil
}

func revisionFlag(fs *pflag.FlagSet, name string) int64 {
	if f := fs.Lookup(name); f != nil {
		if v, ok := f.Value.(*revisionValue); ok {
			return int64(*v)
		}
	}
	return 0
}

func runHistory(ctx context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	e, s, err := serviceIn(d.Config, c)
	if err != nil {
		return Output{}, err
	}
	ws, err := serviceWorkloads(ctx, d, e, s)
	if err != nil {
		return Output{}, err
	}
	out := Output{Title: fmt.Sprintf("history %s (namespace %s)", s.Name, e.Namespace)}
	if len(ws) == 0 {
		out.Sections = []Section{{Lines: []string{fmt.Sprintf("No workloads follow %s:%s in %s.", s.Stream(), e.ImageTag(), e.Name)}}}
		return out, nil
	}
	revs := make([][]plan.Revision, len(ws))
	errs := make([]error, len(ws))
	forEach(len(ws), func(i int) {
		revs[i], errs[i] = d.Cluster.Revisions(ctx, e.Name, ws[i].Kind, ws[i].Name)
		if errs[i] != nil {
			errs[i] = fmt.Errorf("reading the history of %s %s in %s: %w", ws[i].Kind, ws[i].Name, e.Name, errs[i])
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Output{}, err
	}
	if c.Revision == 0 {
		for i, w := range ws {
			out.Sections = append(out.Sections, Section{Heading: workloadKindName(w), Lines: revisionTable(w, revs[i]), Pre: true})
		}
		out.Sections = append(out.Sections, Section{Lines: []string{
			fmt.Sprintf("`history %s %s --revision N` shows one; `undo %s %s --to-revision N` goes back to it.", s.Name, e.Name, s.Name, e.Name),
		}})
		return out, nil
	}
	var missing []string
	for i, w := range ws {
		rev, ok := findRevision(revs[i], c.Revision)
		if !ok {
			missing = append(missing, fmt.Sprintf("%s has no revision %d (it has %s).", workloadKindName(w), c.Revision, revisionNumbers(revs[i])))
			continue
		}
		out.Sections = append(out.Sections, Section{Heading: fmt.Sprintf("%s revision %d", workloadKindName(w), rev.Number), Lines: revisionDetail(w, rev, d), Pre: true})
	}
	if len(missing) == len(ws) {
		return Output{}, &UserError{Output: Output{Private: true, Sections: []Section{{Lines: missing}}}}
	}
	if len(missing) > 0 {
		out.Sections = append(out.Sections, Section{Lines: missing})
	}
	return out, nil
}

func revisionTable(w plan.Workload, revs []plan.Revision) []string {
	if len(revs) == 0 {
		return []string{"no revisions recorded"}
	}
	lines := []string{fmt.Sprintf("  %-8s  %-28s  %s", "REVISION", "IMAGE", "CHANGE-CAUSE")}
	for _, r := range revs {
		mark := " "
		if isCurrent(w, r) {
			mark = "*"
		}
		cause := r.ChangeCause
		if cause == "" {
			cause = "<none>"
		}
		lines = append(lines, fmt.Sprintf("%s %-8d  %-28s  %s", mark, r.Number, imagesText(r.Images), cause))
	}
	return lines
}

func revisionDetail(w plan.Workload, r plan.Revision, d Deps) []string {
	lines := []string{}
	if isCurrent(w, r) {
		lines = append(lines, "current  yes")
	}
	if !r.Created.IsZero() {
		lines = append(lines, fmt.Sprintf("created  %s (%s)", r.Created.UTC().Format("2006-01-02 15:04:05 MST"), age(d.now(), r.Created)))
	}
	cause := r.ChangeCause
	if cause == "" {
		cause = "<none>"
	}
	lines = append(lines, "cause    "+cause)
	names := make([]string, 0, len(r.Images))
	for n := range r.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		lines = append(lines, fmt.Sprintf("image    %s: %s", n, r.Images[n]))
	}
	return lines
}

func isCurrent(w plan.Workload, r plan.Revision) bool {
	return r.Current || (w.Revision != 0 && r.Number == w.Revision)
}

func findRevision(revs []plan.Revision, n int64) (plan.Revision, bool) {
	for _, r := range revs {
		if r.Number == n {
			return r, true
		}
	}
	return plan.Revision{}, false
}

func revisionNumbers(revs []plan.Revision) string {
	if len(revs) == 0 {
		return "none"
	}
	nums := make([]string, len(revs))
	for i, r := range revs {
		nums[i] = strconv.FormatInt(r.Number, 10)
	}
	return strings.Join(nums, ", ")
}

func workloadKindName(w plan.Workload) string { return strings.ToLower(w.Kind) + "/" + w.Name }
