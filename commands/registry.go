package commands

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

// Spec is one row of the command table: what help shows and how the command
// is parsed and carried out. Exactly one of run, plan or Flow applies:
//   - run answers a read-only command (Run);
//   - plan builds the Plan of a mutating command (BuildPlan);
//   - Flow commands act on requests, schedules or the audit trail and are
//     carried out by the bot's approval flow, which reads the parsed Command.
type Spec struct {
	Name string
	// Usage is the one-line synopsis, e.g. "import ENV [SERVICE...] [--dry-run]".
	Usage   string
	Summary string
	// Examples are complete command lines, without a /deploy prefix.
	Examples []string
	// Mutates commands change a cluster through a Plan (BuildPlan); they all
	// accept --dry-run, which Parse adds to their flags.
	Mutates bool
	// Flow commands are executed by the bot's approval flow, not by Run.
	Flow bool
	// Who says who may run the command.
	Who string
	// Anyone: chat users not mapped to a Kubernetes identity may run it too.
	Anyone bool

	// takesID: the command's argument is a request ID (confirm, approve,
	// deny, cancel), which is what a refusal of a mention points to.
	takesID bool
	// freeText: after its first argument the command takes free text (deny's
	// reason), where mentions and any other words are kept as written.
	freeText bool

	// flags declares the command's flags (nil: none).
	flags func(fs *pflag.FlagSet)
	// parse fills c from the positional arguments and flag values; an error
	// is shown to the user together with the usage.
	parse func(p *parser, fs *pflag.FlagSet, c *plan.Command) error
	run   func(ctx context.Context, d Deps, caller plan.Caller, c plan.Command) (Output, error)
	plan  func(ctx context.Context, d Deps, caller plan.Caller, c plan.Command) (plan.Plan, error)
}

// table is THE command table, in the order help lists it. Adding a command
// means one file with its xxxCommand() and one row here. It is built on first
// use rather than in a package variable's initializer because help reads the
// table, which would be an initialization cycle.
func table() []Spec {
	tableOnce.Do(func() {
		specs = []Spec{
			helpCommand(),
			statusCommand(),
			imagesCommand(),
			historyCommand(),
			importCommand(),
			revertCommand(),
			undoCommand(),
			trackCommand(),
			releaseCommand(),
			promoteCommand(),
			holdCommand(),
			unholdCommand(),
			holdsCommand(),
			scheduleCommand(),
			pendingCommand(),
			confirmCommand(),
			approveCommand(),
			denyCommand(),
			cancelCommand(),
			whoamiCommand(),
			auditCommand(),
		}
	})
	return specs
}

var (
	tableOnce sync.Once
	specs     []Spec
)

// Commands returns the command table, in help order.
func Commands() []Spec { return slices.Clone(table()) }

// Lookup returns the table row of the named command (case-insensitive).
func Lookup(name string) (Spec, bool) {
	name = strings.ToLower(name)
	for _, s := range table() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

func commandNames() []string {
	var names []string
	for _, s := range table() {
		names = append(names, s.Name)
	}
	return names
}

// newFlagSet is the command's flag set as Parse uses it: errors are returned,
// never printed, and mutating commands get --dry-run.
func (s Spec) newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet(s.Name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	if s.flags != nil {
		s.flags(fs)
	}
	if s.Mutates {
		fs.Bool("dry-run", false, "show the plan, change nothing")
		fs.String("break-glass", "", "change the env inside a freeze window, saying `REASON`; needs one approval more")
	}
	return fs
}

// usageLines is the synopsis followed by one line per flag, for help and for
// the reply to a malformed command.
func (s Spec) usageLines() []string {
	type flagLine struct{ left, usage string }
	var flags []flagLine
	width := 0
	s.newFlagSet().VisitAll(func(f *pflag.Flag) {
		name, usage := pflag.UnquoteUsage(f)
		left := "--" + f.Name
		if name != "" && f.Value.Type() != "bool" {
			left += " " + name
		}
		width = max(width, len(left))
		flags = append(flags, flagLine{left, usage})
	})
	lines := []string{s.Usage}
	for _, f := range flags {
		lines = append(lines, fmt.Sprintf("  %-*s  %s", width, f.left, f.usage))
	}
	return lines
}
