package commands

import "github.com/deploybot/deploybot/cluster"

// *cluster.Set is the Cluster the bot runs with; this keeps the contract honest.
var _ Cluster = (*cluster.Set)(nil)
