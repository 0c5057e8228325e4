package commands

// approveCommand is the text form of the Approve button. The bot's flow
// executes it: the approver must not be the requester and must pass the same
// access checks as the request's Plan; the approval binds to the Plan's hash.
func approveCommand() Spec {
	return Spec{
		Name:     "approve",
		Usage:    "approve [ID]",
		Summary:  "approve someone else's request (the ID may be left out when only one waits for you)",
		Examples: []string{"approve #abc123"},
		Who:      "anyone but the requester whose Kubernetes identity passes the same access checks as the request",
		Flow:     true,
		takesID:  true,
		parse:    parseOptionalID,
	}
}
