package commands

// pendingCommand lists the open requests; the bot's flow executes it from
// its store.
func pendingCommand() Spec {
	return Spec{
		Name:     "pending",
		Usage:    "pending",
		Summary:  "the open requests: waiting for confirmation or approval, or running",
		Examples: []string{"pending"},
		Who:      whoMapped,
		Flow:     true,
	}
}
