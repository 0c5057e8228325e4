package commands

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

// parser carries what a command's parse function resolves words against.
type parser struct {
	cfg        *config.Config
	channelEnv string
	now        time.Time
}

// findEnv resolves an environment name, ignoring case.
func findEnv(cfg *config.Config, word string) (*config.Environment, bool) {
	for i := range cfg.Environments {
		if word != "" && strings.EqualFold(cfg.Environments[i].Name, word) {
			return &cfg.Environments[i], true
		}
	}
	return nil, false
}

// findService resolves a service by name, ImageStream name or alias, ignoring case.
func findService(cfg *config.Config, word string) (*config.Service, bool) {
	if word == "" {
		return nil, false
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if strings.EqualFold(s.Name, word) || strings.EqualFold(s.ImageStream, word) {
			return s, true
		}
	}
	for i := range cfg.Services {
		for _, a := range cfg.Services[i].Aliases {
			if strings.EqualFold(a, word) {
				return &cfg.Services[i], true
			}
		}
	}
	return nil, false
}

func envNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Environments))
	for _, e := range cfg.Environments {
		names = append(names, e.Name)
	}
	return names
}

func serviceNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	return names
}

// serviceWords are all the words that name a service, for suggestions.
func serviceWords(cfg *config.Config) []string {
	var words []string
	for _, s := range cfg.Services {
		words = append(words, s.Name)
		if s.ImageStream != "" && s.ImageStream != s.Name {
			words = append(words, s.ImageStream)
		}
		words = append(words, s.Aliases...)
	}
	return words
}

// serviceHint is " Did you mean worker (packit-worker)?" for a mistyped service.
func serviceHint(cfg *config.Config, word string) string {
	s := suggest(word, serviceWords(cfg))
	if s == "" {
		return ""
	}
	if svc, ok := findService(cfg, s); ok && svc.Name != s {
		return fmt.Sprintf(" Did you mean %s (%s)?", s, svc.Name)
	}
	return fmt.Sprintf(" Did you mean %s?", s)
}

func (p *parser) env(word string) (string, error) {
	if e, ok := findEnv(p.cfg, word); ok {
		return e.Name, nil
	}
	if s, ok := findService(p.cfg, word); ok {
		return "", userErrorf("%q is a service (%s), not an environment. Environments: %s.", clip(word), s.Name, listed(envNames(p.cfg)))
	}
	return "", userErrorf("Unknown environment %q.%s Environments: %s.", clip(word), didYouMean(word, envNames(p.cfg)), listed(envNames(p.cfg)))
}

func (p *parser) service(word string) (string, error) {
	if s, ok := findService(p.cfg, word); ok {
		return s.Name, nil
	}
	if e, ok := findEnv(p.cfg, word); ok {
		return "", userErrorf("%q is an environment, not a service. Services: %s.", e.Name, listed(serviceNames(p.cfg)))
	}
	return "", userErrorf("Unknown service %q.%s Services: %s.", clip(word), serviceHint(p.cfg, word), listed(serviceNames(p.cfg)))
}

// defaultEnv is the environment used when the command names none: the
// channel's, or the only one configured. Anything else would be a guess.
func (p *parser) defaultEnv() (string, error) {
	if e, ok := findEnv(p.cfg, p.channelEnv); ok {
		return e.Name, nil
	}
	switch len(p.cfg.Environments) {
	case 0:
		return "", userErrorf("No environments are configured.")
	case 1:
		return p.cfg.Environments[0].Name, nil
	}
	return "", userErrorf("Which environment? One of: %s.", listed(envNames(p.cfg)))
}

// serviceAndEnv reads "SERVICE [ENV]" (ENV SERVICE works too): exactly one
// service and at most one environment, defaulting as defaultEnv says.
func (p *parser) serviceAndEnv(args []string) (svc, env string, err error) {
	for _, w := range args {
		if e, ok := findEnv(p.cfg, w); ok {
			if env != "" && env != e.Name {
				return "", "", userErrorf("One environment at a time: got %s and %s.", env, e.Name)
			}
			env = e.Name
			continue
		}
		if s, ok := findService(p.cfg, w); ok {
			if svc != "" && svc != s.Name {
				return "", "", userErrorf("One service at a time: got %s and %s.", svc, s.Name)
			}
			svc = s.Name
			continue
		}
		if svc == "" {
			_, err := p.service(w)
			return "", "", err
		}
		_, err := p.env(w)
		return "", "", err
	}
	if svc == "" {
		return "", "", userErrorf("Which service? One of: %s.", listed(serviceNames(p.cfg)))
	}
	if env == "" {
		if env, err = p.defaultEnv(); err != nil {
			return "", "", err
		}
	}
	return svc, env, nil
}

// envAndServices reads "[ENV] [SERVICE...]" (the environment may stand
// anywhere): at most one environment, defaulting as defaultEnv says, and
// services deduplicated in the order given. No services means all of them.
func (p *parser) envAndServices(args []string) (env string, svcs []string, err error) {
	env, svcs, err = p.givenEnvAndServices(args)
	if err == nil && env == "" {
		env, err = p.defaultEnv()
	}
	return env, svcs, err
}

// givenEnvAndServices is envAndServices without a default: env is "" when
// the words name none.
func (p *parser) givenEnvAndServices(args []string) (env string, svcs []string, err error) {
	for _, w := range args {
		if e, ok := findEnv(p.cfg, w); ok {
			if env != "" && env != e.Name {
				return "", nil, userErrorf("One environment at a time: got %s and %s.", env, e.Name)
			}
			env = e.Name
			continue
		}
		if s, ok := findService(p.cfg, w); ok {
			if !slices.Contains(svcs, s.Name) {
				svcs = append(svcs, s.Name)
			}
			continue
		}
		if env == "" {
			hint := didYouMean(w, append(envNames(p.cfg), serviceWords(p.cfg)...))
			return "", nil, userErrorf("Unknown environment or service %q.%s Environments: %s. Services: %s.", clip(w), hint,
				listed(envNames(p.cfg)), listed(serviceNames(p.cfg)))
		}
		_, err := p.service(w)
		return "", nil, err
	}
	return env, svcs, nil
}

// digestForms is how a malformed digest reply says what is accepted.
const digestForms = "sha256:<64 hex> or a unique prefix of at least 7 hex characters (`images SERVICE ENV` lists them)"

// parseDigest normalises a digest argument: "sha256:<64 hex>", 64 hex, a hex
// prefix (≥ 7, with or without "sha256:"), or a pasted REPOSITORY@sha256:...
// of the service's repository (also as a link, https://REPOSITORY@..., the
// way chat clients turn it into one). Full digests come back as
// "sha256:<64 hex>", prefixes as bare lowercase hex.
func parseDigest(word, repository string) (string, error) {
	w := strings.ToLower(word)
	if i := strings.LastIndex(w, "@"); i >= 0 {
		repo := w[:i]
		for _, scheme := range []string{"https://", "http://", "docker://"} {
			repo = strings.TrimPrefix(repo, scheme)
		}
		w = w[i+1:]
		if repo != "" && repository != "" && repo != strings.ToLower(repository) {
			return "", userErrorf("%s is an image of %s, but this service's repository is %s.", clip(word), clip(repo), repository)
		}
	}
	hex := strings.TrimPrefix(w, "sha256:")
	if len(hex) < 7 || len(hex) > 64 || !isHex(hex) {
		return "", userErrorf("Malformed digest %q: give %s.", clip(word), digestForms)
	}
	if len(hex) == 64 {
		return "sha256:" + hex, nil
	}
	return hex, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return s != ""
}

func isFullDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(hex) == 64 && isHex(hex)
}

// parseID accepts a request ID with or without its '#', in any case: the
// bot issues lower-case IDs, and "CONFIRM #CUOGLDSIKT" (Caps Lock, an ID
// read out or copied from an upper-cased title) means the same request.
func parseID(word string) (string, error) {
	id := strings.TrimPrefix(word, "#")
	if id == "" || len(id) > 64 || !validID.MatchString(id) {
		return "", userErrorf("Malformed request ID %q: IDs look like #abc123 (`pending` lists the open ones).", clip(word))
	}
	return strings.ToLower(id), nil
}

var validID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// parseUntil reads --until: a duration from now (90m, 2h, 3d, 1w), an
// RFC 3339 time, a date and time or a date in the environment's time zone, or
// a clock time (the next one to come). It must lie in the future.
func parseUntil(s string, now time.Time, loc *time.Location) (time.Time, error) {
	t, ok := func() (time.Time, bool) {
		if d, err := time.ParseDuration(s); err == nil {
			return now.Add(d), true
		}
		if m := daysWeeks.FindStringSubmatch(s); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil || n > 3660 {
				return time.Time{}, false
			}
			days := n
			if m[2] == "w" {
				days = 7 * n
			}
			return now.AddDate(0, 0, days), true
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, true
		}
		for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, s, loc); err == nil {
				return t, true
			}
		}
		if c, err := time.ParseInLocation("15:04", s, loc); err == nil {
			n := now.In(loc)
			t := time.Date(n.Year(), n.Month(), n.Day(), c.Hour(), c.Minute(), 0, 0, loc)
			if !t.After(now) {
				t = t.AddDate(0, 0, 1)
			}
			return t, true
		}
		return time.Time{}, false
	}()
	if !ok {
		return time.Time{}, userErrorf("--until %q is not a time: give a duration (90m, 2h, 3d), a date (2026-12-01), a date and time (\"2026-12-01 09:00\", in %s), an RFC 3339 time or a clock time (09:00).", clip(s), loc)
	}
	if !t.After(now) {
		return time.Time{}, userErrorf("--until %s is not in the future.", t.In(loc).Format("2006-01-02 15:04 MST"))
	}
	if t.After(now.AddDate(1, 0, 0)) {
		return time.Time{}, userErrorf("--until %s is more than a year away (it can be at most a year ahead); leave --until out and end it by hand.", t.In(loc).Format("2006-01-02 15:04 MST"))
	}
	return t, nil
}

var daysWeeks = regexp.MustCompile(`^(\d{1,5})([dw])$`)

// envLocation is the environment's time zone (schedule times are in it).
func envLocation(e *config.Environment) *time.Location {
	if e != nil && e.TimeZone != "" {
		if loc, err := time.LoadLocation(e.TimeZone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// listed is names for a reply: "stg, prod", or "none configured".
func listed(names []string) string {
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}
