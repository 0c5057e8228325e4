package commands

import (
	"strings"

	"strconv"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

// maxAudit bounds how many audit records one reply shows.
const maxAudit = 200

// auditCommand shows the last N recorded transitions; the bot's flow
// executes it from its store (N 0 means the bot's default).
func auditCommand() Spec {
	return Spec{
		Name:     "audit",
		Usage:    "audit [N]",
		Summary:  "the last N recorded actions: who, what, when, outcome",
		Examples: []string{"audit", "audit 50"},
		Who:      whoMapped,
		Flow:     true,
		parse:    parseAudit,
	}
}

func parseAudit(_ *parser, fs *pflag.FlagSet, c *plan.Command) error {
	switch args := fs.Args(); len(args) {
	case 0:
		return nil
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > maxAudit {
			return userErrorf("N is how many records to show, a number from 1 to %d; got %q.", maxAudit, clip(args[0]))
		}
		c.N = n
		return nil
	default:
		return userErrorf("audit takes one number, got %q.", clip(strings.Join(args, " ")))
	}
}
