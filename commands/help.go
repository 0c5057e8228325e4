package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// Who texts shared by several commands.
const (
	whoAnyone = "anyone, including chat users not yet mapped to a Kubernetes identity"
	whoMapped = "any chat user mapped to a Kubernetes identity (identities in the config)"
)

func helpCommand() Spec {
	return Spec{
		Name:     "help",
		Usage:    "help [COMMAND]",
		Summary:  "list the commands, or show one's usage, examples and who may run it",
		Examples: []string{"help", "help revert"},
		Who:      whoAnyone,
		Anyone:   true,
		parse:    parseHelp,
		run:      runHelp,
	}
}

func parseHelp(_ *parser, fs *pflag.FlagSet, c *plan.Command) error {
	switch args := fs.Args(); len(args) {
	case 0:
		return nil
	case 1:
		s, ok := Lookup(args[0])
		if !ok {
			return userErrorf("There is no command %q.%s", clip(args[0]), didYouMean(args[0], commandNames()))
		}
		c.Topic = s.Name
		return nil
	default:
		return userErrorf("help explains one command at a time.")
	}
}

func runHelp(_ context.Context, d Deps, _ plan.Caller, c plan.Command) (Output, error) {
	if c.Topic == "" {
		return helpOverview(d.Config), nil
	}
	s, ok := Lookup(c.Topic)
	if !ok {
		return Output{}, userFail("There is no command %q.%s", c.Topic, didYouMean(c.Topic, commandNames()))
	}
	return helpFor(d.Config, s), nil
}

// helpOverview lists every command of the table and what the config knows.
func helpOverview(cfg *config.Config) Output {
	// Usages longer than the column get their summary on the next line, so
	// one long synopsis does not push every summary off a chat window.
	const column = 40
	width := 0
	for _, s := range table() {
		if len(s.Usage) <= column {
			width = max(width, len(s.Usage))
		}
	}
	var lines []string
	for _, s := range table() {
		if len(s.Usage) > width {
			lines = append(lines, s.Usage, fmt.Sprintf("%-*s  %s", width, "", s.Summary))
			continue
		}
		lines = append(lines, fmt.Sprintf("%-*s  %s", width, s.Usage, s.Summary))
	}
	out := Output{
		Title:    "deploybot commands",
		Private:  true,
		Sections: []Section{{Lines: lines, Pre: true}},
	}
	var known []string
	if names := envNames(cfg); len(names) > 0 {
		known = append(known, "Environments: "+strings.Join(names, ", ")+".")
	}
	if len(cfg.Services) > 0 {
		var svcs []string
		for _, s := range cfg.Services {
			if len(s.Aliases) > 0 {
				svcs = append(svcs, fmt.Sprintf("%s (%s)", s.Name, strings.Join(s.Aliases, ", ")))
			} else {
				svcs = append(svcs, s.Name)
			}
		}
		known = append(known, "Services: "+strings.Join(svcs, ", ")+".")
	}
	known = append(known, "`help COMMAND` shows examples and who may run it. Commands that change a cluster accept --dry-run.",
		"Commands, names and request IDs may be typed in any case, and quotes curly or straight; a mention (@name) is never taken for an argument.")
	out.Sections = append(out.Sections, Section{Lines: known})
	return out
}

// helpFor explains one command: usage with its flags, examples, and who may
// run it, with each environment's policy for commands that change a cluster.
func helpFor(cfg *config.Config, s Spec) Output {
	out := Output{
		Title:   s.Name + ": " + s.Summary,
		Private: true,
		Sections: []Section{
			{Heading: "Usage", Lines: s.usageLines(), Pre: true},
		},
	}
	if len(s.Examples) > 0 {
		out.Sections = append(out.Sections, Section{Heading: "Examples", Lines: s.Examples, Pre: true})
	}
	who := []string{s.Who}
	if s.Mutates {
		for i := range cfg.Environments {
			e := &cfg.Environments[i]
			who = append(who, fmt.Sprintf("%s: %s", e.Name, policyText(policyOf(e))))
		}
	}
	out.Sections = append(out.Sections, Section{Heading: "Who may run it", Lines: who})
	return out
}
