package commands

import (
	"strings"

	"github.com/deploybot/deploybot/plan"
	"github.com/spf13/pflag"
)

// The schedule subcommands.
const (
	SchedulePause  = "pause"
	ScheduleResume = "resume"
	ScheduleSkip   = "skip"
)

// scheduleCommand shows or pauses the scheduled imports that the bot runs
// itself (environments with a schedule). The bot's flow executes it:
// Sub "" shows the schedules of Env (of every env when Env is empty), "pause"
// stops Env's scheduled imports until Until (zero: until resumed), "resume"
// restarts them, "skip" skips Env's next run only.
func scheduleCommand() Spec {
	return Spec{
		Name:     "schedule",
		Usage:    "schedule [ENV] | schedule pause ENV [--until TIME] | schedule resume ENV | schedule skip ENV",
		Summary:  "scheduled imports: next run, paused or not; pause, resume or skip the next run",
		Examples: []string{"schedule", "schedule prod", "schedule pause prod --until 2026-12-01", "schedule pause prod --until 48h", "schedule resume prod", "schedule skip prod"},
		Who:      "showing: " + whoMapped + "; pause, resume and skip: mapped users who may import into the environment",
		Flow:     true,
		flags: func(fs *pflag.FlagSet) {
			fs.String("until", "", "with pause: resume by itself at `TIME` (2h, 3d, 2026-12-01, \"2026-12-01 09:00\" in the env's time zone, RFC 3339)")
		},
		parse: parseSchedule,
	}
}

func parseSchedule(p *parser, fs *pflag.FlagSet, c *plan.Command) error {
	args := fs.Args()
	until, _ := fs.GetString("until")
	if len(args) > 0 {
		switch w := args[0]; {
		case strings.EqualFold(w, SchedulePause), strings.EqualFold(w, ScheduleResume), strings.EqualFold(w, ScheduleSkip):
			c.Sub = strings.ToLower(w)
			args = args[1:]
		default:
			if _, isEnv := findEnv(p.cfg, w); !isEnv {
				return userErrorf("Unknown environment or subcommand %q.%s Environments: %s; subcommands: pause, resume, skip.",
					clip(w), didYouMean(w, append([]string{SchedulePause, ScheduleResume, ScheduleSkip}, envNames(p.cfg)...)), listed(envNames(p.cfg)))
			}
		}
	}
	if len(args) > 1 {
		return userErrorf("One environment at a time, got %q.", clip(strings.Join(args, " ")))
	}
	if len(args) == 1 {
		env, err := p.env(args[0])
		if err != nil {
			return err
		}
		c.Env = env
	}
	if c.Env == "" {
		env, err := p.defaultEnv()
		switch {
		case err == nil:
			c.Env = env
		case c.Sub != "":
			// Showing may cover every environment; changing one must name it.
			return err
		}
	}
	if until != "" {
		if c.Sub != SchedulePause {
			return userErrorf("--until goes with `schedule pause ENV`.")
		}
		e, _ := findEnv(p.cfg, c.Env)
		t, err := parseUntil(until, p.now, envLocation(e))
		if err != nil {
			return err
		}
		c.Until = t
	}
	return nil
}
