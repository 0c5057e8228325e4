package commands

import (
	"strings"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

// denyCommand is the text form of the Deny button, with an optional reason.
// The bot's flow executes it: a denial ends the request.
func denyCommand() Spec {
	return Spec{
		Name:     "deny",
		Usage:    "deny [#ID] [REASON...]",
		Summary:  "deny a request, saying why; it ends the request",
		Examples: []string{"deny #abc123", "deny #abc123 not during the release freeze", "deny #abc123 ask @carol, she owns it"},
		Who:      "anyone who could approve the request",
		Flow:     true,
		takesID:  true,
		freeText: true,
		parse:    parseDeny,
	}
}

// parseDeny reads "[#ID] [REASON...]": the first word is the ID when it
// starts with '#' or is the only word; the rest is the reason. Without an ID
// the bot picks the only request the caller could mean, or asks.
func parseDeny(_ *parser, fs *pflag.FlagSet, c *plan.Command) error {
	args := fs.Args()
	if len(args) == 0 {
		return nil
	}
	if strings.HasPrefix(args[0], "#") || len(args) == 1 {
		id, err := parseID(args[0])
		if err != nil {
			return err
		}
		c.ID, args = id, args[1:]
	}
	c.Reason = clipReason(strings.Join(args, " "))
	return nil
}

// clipReason bounds a free-text reason stored with the request.
func clipReason(s string) string {
	const n = 500
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}
