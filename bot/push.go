package bot

import (
	"context"

	"github.com/deploybot/deploybot/schedule"
	"github.com/deploybot/deploybot/webhook"
)

// Pushed acts on a registry webhook's accepted delivery (webhook.Receiver):
// the scheduler looks each pushed tag up in the registry and imports or
// announces what changed (schedule.Pushed). Each outcome is logged.
func (b *Bot) Pushed(ctx context.Context, d webhook.Delivery) {
	log := b.log.With("source", string(d.Source), "delivery", d.ID)
	outs, err := b.sched.Pushed(ctx, d.Pushes)
	for _, o := range outs {
		log.Info("registry push", "env", o.Env, "service", o.Service, "from", o.From, "to", o.To, "did", o.Did, "request", o.Request, "reason", o.Reason)
	}
	outcome := OutcomeOK
	switch {
	case err != nil:
		log.Error("acting on a registry push", "err", err)
		outcome = OutcomeError
	case len(outs) == 0:
		pushes := make([]string, len(d.Pushes))
		for i, p := range d.Pushes {
			pushes[i] = p.String()
		}
		log.Info("registry push names no service of any environment (repository and env tag)", "pushes", pushes)
		outcome = OutcomeIgnored
	case !acted(outs):
		outcome = OutcomeDuplicate
	}
	// Counted with the chat requests, as platform "registry".
	b.metrics.Request("registry", "push-"+string(d.Source), outcome)
}

// acted reports whether a push did anything but find it done before.
func acted(outs []schedule.PushOutcome) bool {
	for _, o := range outs {
		if o.Did != schedule.PushDuplicate {
			return true
		}
	}
	return false
}
