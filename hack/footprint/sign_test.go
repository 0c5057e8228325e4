package main

import (
	"testing"

	"github.com/deploybot/deploybot/bot/slack"
)

// The copy of the signing code must sign as bot/slack does, or every slash
// command would be refused.
func TestSignMatchesSlack(t *testing.T) {
	body := []byte("team_id=T0FOOTPRINT&user_id=U0FOOTPRINT&command=%2Fdeploy&text=help")
	if got, want := sign("s3cret", 1700000000, body), slack.Sign("s3cret", 1700000000, body); got != want {
		t.Fatalf("sign = %s, bot/slack.Sign = %s", got, want)
	}
}
