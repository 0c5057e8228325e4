package commands

// cancelCommand is the text form of the Cancel button. The bot's flow
// executes it: only the requester may cancel, and only before it runs.
func cancelCommand() Spec {
	return Spec{
		Name:     "cancel",
		Usage:    "cancel [ID]",
		Summary:  "cancel your own request before it runs",
		Examples: []string{"cancel #abc123"},
		Who:      "the requester",
		Flow:     true,
		takesID:  true,
		parse:    parseOptionalID,
	}
}
