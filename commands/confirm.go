package commands

import (
	"strings"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

// confirmCommand is the text form of the Confirm button. The bot's flow
// executes it: only the requester may confirm their own request.
func confirmCommand() Spec {
	return Spec{
		Name:     "confirm",
		Usage:    "confirm [ID]",
		Summary:  "confirm your own request (the ID may be left out when you have only one waiting)",
		Examples: []string{"confirm #abc123"},
		Who:      "the requester",
		Flow:     true,
		takesID:  true,
		parse:    parseOptionalID,
	}
}

// parseOptionalID reads "[ID]" for confirm, approve and cancel. Without an
// ID the bot picks the only request the command could mean, or asks.
func parseOptionalID(_ *parser, fs *pflag.FlagSet, c *plan.Command) error {
	switch args := fs.Args(); len(args) {
	case 0:
		return nil
	case 1:
		id, err := parseID(args[0])
		c.ID = id
		return err
	default:
		return userErrorf("One request at a time, got %q.", clip(strings.Join(args, " ")))
	}
}
