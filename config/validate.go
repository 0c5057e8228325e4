package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	// Embedded so that timeZone validates the same in a scratch container
	// without /usr/share/zoneinfo as on a workstation.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Platforms are the chat platforms identities and channels may name.
var Platforms = []string{"slack", "discord", "terminal"}

// WorkloadKinds are the workload kinds a service may list.
var WorkloadKinds = []string{"Deployment", "StatefulSet"}

// Problem is one thing wrong with a config, at a field path such as
// environments[1].namespace.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError lists every problem found in a config, so one run of the
// bot shows all of them rather than one per restart.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid config: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config, %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

var (
	// dnsLabel is what Kubernetes accepts as a namespace name; env names and
	// aliases follow it too because users type them in chat.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// streamName is an ImageStream (and service) name: a DNS subdomain.
	streamName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	// imageTag is the Docker reference grammar for a tag.
	imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate reports every problem of the config in one *ValidationError, or
// nil. Fields that SetDefaults fills may be empty.
func (c *Config) Validate() error {
	var ps problems
	envIndex := map[string]int{}
	envNames := c.EnvNames()

	if len(c.Environments) == 0 {
		ps.add("environments", "at least one environment is required")
	}
	for i, e := range c.Environments {
		p := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			ps.add(p+".name", "required")
		case !dnsLabel.MatchString(e.Name) || len(e.Name) > 63:
			ps.add(p+".name", "%q is not a valid name (lowercase letters, digits and '-', at most 63)", e.Name)
		default:
			if j, dup := envIndex[e.Name]; dup {
				ps.add(p+".name", "%q is already the name of environments[%d]", e.Name, j)
			} else {
				envIndex[e.Name] = i
			}
		}
		switch {
		case e.Namespace == "":
			ps.add(p+".namespace", "required")
		case !dnsLabel.MatchString(e.Namespace) || len(e.Namespace) > 63:
			ps.add(p+".namespace", "%q is not a valid namespace name", e.Namespace)
		}
		switch e.Platform {
		case "", PlatformOpenShift, PlatformKubernetes:
		default:
			ps.add(p+".platform", "%q is not one of %s, %s", e.Platform, PlatformOpenShift, PlatformKubernetes)
		}
		if e.PollInterval.Duration != 0 {
			switch {
			case !e.Kubernetes():
				ps.add(p+".pollInterval", "only a plain Kubernetes environment polls the registry; on OpenShift the image stream's scheduled import does (every 15 minutes, set in the cluster)")
			case e.PollInterval.Duration < time.Minute:
				ps.add(p+".pollInterval", "%s is too often to ask a registry (Docker Hub and Quay rate-limit); at least 1m", e.PollInterval.Duration)
			}
		}
		if e.Tag != "" && !imageTag.MatchString(e.Tag) {
			ps.add(p+".tag", "%q is not a valid image tag", e.Tag)
		}
		if e.Approvals.Count < 0 {
			ps.add(p+".approvals.count", "must not be negative, got %d", e.Approvals.Count)
		}
		if e.Approvals.Expiry.Duration < 0 {
			ps.add(p+".approvals.expiry", "must not be negative, got %s", e.Approvals.Expiry.Duration)
		}
		if e.Schedule != "" {
			validateSchedule(&ps, p+".schedule", e.Schedule)
		}
		validateFreeze(&ps, p, e.Freeze)
		if e.TimeZone != "" {
			if _, err := time.LoadLocation(e.TimeZone); err != nil || e.TimeZone == "Local" {
				ps.add(p+".timeZone", "unknown time zone %q (want an IANA name such as UTC or Europe/Prague)", e.TimeZone)
			}
		}
		for j, ch := range e.Channels {
			if strings.TrimSpace(ch) == "" {
				ps.add(fmt.Sprintf("%s.channels[%d]", p, j), "must not be empty")
			}
		}
	}

	validateServices(&ps, c.Services, envIndex)
	validateKubernetes(&ps, c)
	validateIdentities(&ps, c.Identities)

	seenChannel := map[string]int{}
	for i, ch := range c.Channels {
		p := fmt.Sprintf("channels[%d]", i)
		validatePlatform(&ps, p+".platform", ch.Platform)
		if ch.ID == "" {
			ps.add(p+".id", "required")
		} else if j, dup := seenChannel[ch.Platform+"/"+ch.ID]; dup {
			ps.add(p+".id", "channel %q of %s already has an environment in channels[%d]", ch.ID, ch.Platform, j)
		} else {
			seenChannel[ch.Platform+"/"+ch.ID] = i
		}
		switch _, ok := envIndex[ch.Env]; {
		case ch.Env == "":
			ps.add(p+".env", "required")
		case !ok:
			ps.add(p+".env", "unknown environment %q%s", ch.Env, didYouMean(ch.Env, envNames))
		}
	}

	switch c.Execution {
	case "", ExecutionServiceAccount, ExecutionImpersonate:
	default:
		ps.add("execution", "%q is not one of %s, %s", c.Execution, ExecutionServiceAccount, ExecutionImpersonate)
	}
	switch c.Store.Backend {
	case "", "file", "kubernetes":
	default:
		ps.add("store.backend", "%q is not one of file, kubernetes", c.Store.Backend)
	}

	validateScheduling(&ps, c)
	validateFeeds(&ps, c)
	validateStore(&ps, c.Store)
	validateDiscord(&ps, c)
	validateSlack(&ps, c)
	validateHTTP(&ps, c.HTTP)
	validateWebhooks(&ps, c.Webhooks)
	c.validateRepositories(&ps)

	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

func validateSchedule(ps *problems, path, spec string) {
	// The time zone has its own field; a TZ= prefix would silently override it.
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		ps.add(path, "invalid cron expression %q: put the time zone in timeZone, not in the schedule", spec)
		return
	}
	if _, err := cron.ParseStandard(spec); err != nil {
		ps.add(path, "invalid cron expression %q (robfig/cron/v3 standard 5-field parser): %v", spec, err)
	}
}

func validateServices(ps *problems, services []Service, envIndex map[string]int) {
	if len(services) == 0 {
		ps.add("services", "at least one service is required")
	}
	// owner maps every word that names a service (name or alias) to the
	// service name, so a word resolves to exactly one service.
	owner := map[string]string{}
	for _, s := range services {
		if s.Name != "" {
			if _, dup := owner[s.Name]; !dup {
				owner[s.Name] = s.Name
			}
		}
	}
	seenName := map[string]int{}
	seenStream := map[string]int{}
	for i, s := range services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			ps.add(p+".name", "required")
		case !streamName.MatchString(s.Name) || len(s.Name) > 253:
			ps.add(p+".name", "%q is not a valid name (lowercase letters, digits, '-' and '.')", s.Name)
		default:
			if j, dup := seenName[s.Name]; dup {
				ps.add(p+".name", "%q is already the name of services[%d]", s.Name, j)
			} else {
				seenName[s.Name] = i
			}
			if _, isEnv := envIndex[s.Name]; isEnv {
				ps.add(p+".name", "%q is also an environment name, so commands could not tell them apart", s.Name)
			}
		}
		for j, a := range s.Aliases {
			ap := fmt.Sprintf("%s.aliases[%d]", p, j)
			if a == "" {
				ps.add(ap, "must not be empty")
				continue
			}
			if !dnsLabel.MatchString(a) {
				ps.add(ap, "%q is not a valid alias (lowercase letters, digits and '-')", a)
				continue
			}
			if _, isEnv := envIndex[a]; isEnv {
				ps.add(ap, "%q is also an environment name, so commands could not tell them apart", a)
				continue
			}
			switch other, taken := owner[a]; {
			case !taken:
				owner[a] = s.Name
			case other == s.Name && a == s.Name:
				ps.add(ap, "%q is the service's own name", a)
			case other == s.Name:
				ps.add(ap, "%q is listed twice", a)
			case other == a:
				ps.add(ap, "%q is the name of another service", a)
			default:
				ps.add(ap, "%q is already an alias of %s", a, other)
			}
		}
		if s.ImageStream != "" {
			if !streamName.MatchString(s.ImageStream) {
				ps.add(p+".imageStream", "%q is not a valid ImageStream name", s.ImageStream)
			} else if j, dup := seenStream[s.ImageStream]; dup {
				ps.add(p+".imageStream", "%q is already the image stream of services[%d]", s.ImageStream, j)
			} else {
				seenStream[s.ImageStream] = i
			}
		} else if s.Name != "" {
			// ImageStream defaults to Name; count it so a clash with another
			// service's explicit imageStream is found.
			if j, dup := seenStream[s.Name]; dup {
				ps.add(p+".imageStream", "%q (the default, from name) is already the image stream of services[%d]", s.Name, j)
			} else {
				seenStream[s.Name] = i
			}
		}
		validateRepository(ps, p+".repository", s.Repository)
		seenWorkload := map[Workload]int{}
		for j, w := range s.Workloads {
			wp := fmt.Sprintf("%s.workloads[%d]", p, j)
			if !contains(WorkloadKinds, w.Kind) {
				ps.add(wp+".kind", "%q is not one of %s", w.Kind, strings.Join(WorkloadKinds, ", "))
			}
			if w.Name == "" {
				ps.add(wp+".name", "required")
			} else if !streamName.MatchString(w.Name) {
				ps.add(wp+".name", "%q is not a valid %s name", w.Name, w.Kind)
			}
			if w.Container != "" && !dnsLabel.MatchString(w.Container) {
				ps.add(wp+".container", "%q is not a valid container name", w.Container)
			}
			if k, dup := seenWorkload[w]; dup {
				ps.add(wp, "%s %s is already listed in workloads[%d]", w.Kind, w.Name, k)
			} else {
				seenWorkload[w] = j
			}
		}
	}
}

// validateKubernetes: a plain Kubernetes environment has no image triggers
// to find a service's workloads by, so every service names them.
func validateKubernetes(ps *problems, c *Config) {
	for i, host := range c.Registry.Insecure {
		if host == "" || strings.ContainsAny(host, "/ \t@") {
			ps.add(fmt.Sprintf("registry.insecure[%d]", i), "%q is not a registry host (host or host:port)", host)
		}
	}
	var kube []string
	for _, e := range c.Environments {
		if e.Kubernetes() {
			kube = append(kube, e.Name)
		}
	}
	if len(kube) == 0 {
		return
	}
	for i, s := range c.Services {
		if len(s.Workloads) == 0 {
			ps.add(fmt.Sprintf("services[%d].workloads", i), "required: environment %s is plain Kubernetes, which has no image triggers to find %s's workloads by; list them, e.g. {kind: Deployment, name: %s, container: %s}",
				strings.Join(kube, ", "), s.Name, s.Name, s.Name)
		}
	}
}

func validateRepository(ps *problems, path, repo string) {
	switch {
	case repo == "":
		ps.add(path, "required (the registry repository, e.g. quay.io/packit/packit-worker)")
	case strings.ContainsAny(repo, " \t\r\n"):
		ps.add(path, "%q must not contain spaces", repo)
	case strings.Contains(repo, "://"):
		ps.add(path, "%q must not have a scheme; write it as in a pull spec, e.g. quay.io/packit/packit-worker", repo)
	case strings.Contains(repo, "@"):
		ps.add(path, "%q must not contain a digest; the repository is written without tag or digest", repo)
	case strings.Contains(repo[strings.LastIndex(repo, "/")+1:], ":"):
		ps.add(path, "%q must not contain a tag; the environment's tag is added to it", repo)
	case strings.HasSuffix(repo, "/") || strings.HasPrefix(repo, "/") || strings.Contains(repo, "//"):
		ps.add(path, "%q has an empty path component", repo)
	}
}

func validateIdentities(ps *problems, ids Identities) {
	seenUser := map[string]int{}
	for i, u := range ids.Users {
		p := fmt.Sprintf("identities.users[%d]", i)
		validatePlatform(ps, p+".platform", u.Platform)
		if u.ID == "" {
			ps.add(p+".id", "required")
		} else if j, dup := seenUser[u.Platform+"/"+u.ID]; dup {
			ps.add(p+".id", "%s user %q is already mapped by identities.users[%d]", u.Platform, u.ID, j)
		} else {
			seenUser[u.Platform+"/"+u.ID] = i
		}
		if u.User == "" {
			ps.add(p+".user", "required (the Kubernetes user name)")
		} else if strings.HasPrefix(u.User, "system:") {
			ps.add(p+".user", "%q is a system user; map chat users to people", u.User)
		}
		validateGroups(ps, p+".groups", u.Groups)
	}
	seenGroup := map[string]int{}
	for i, g := range ids.Groups {
		p := fmt.Sprintf("identities.groups[%d]", i)
		validatePlatform(ps, p+".platform", g.Platform)
		if g.ID == "" {
			ps.add(p+".id", "required")
		} else if j, dup := seenGroup[g.Platform+"/"+g.ID]; dup {
			ps.add(p+".id", "%s group %q is already mapped by identities.groups[%d]", g.Platform, g.ID, j)
		} else {
			seenGroup[g.Platform+"/"+g.ID] = i
		}
		if len(g.Groups) == 0 {
			ps.add(p+".groups", "at least one Kubernetes group is required")
		}
		validateGroups(ps, p+".groups", g.Groups)
	}
}

func validateGroups(ps *problems, path string, groups []string) {
	for j, g := range groups {
		if strings.TrimSpace(g) == "" {
			ps.add(fmt.Sprintf("%s[%d]", path, j), "must not be empty")
		}
	}
}

func validatePlatform(ps *problems, path, platform string) {
	switch {
	case platform == "":
		ps.add(path, "required (one of %s)", strings.Join(Platforms, ", "))
	case !contains(Platforms, platform):
		ps.add(path, "%q is not one of %s%s", platform, strings.Join(Platforms, ", "), didYouMean(platform, Platforms))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// didYouMean returns `; did you mean "x"?` for the closest candidate within a
// small edit distance, or "".
func didYouMean(word string, candidates []string) string {
	if s := Suggest(word, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

// Suggest returns the candidate closest to word, or "" when none is close
// enough to be a likely typo: a case-insensitive edit distance of at most 2
// (or a third of a long word), or word being the start of exactly one
// candidate. Config validation and the command parser both use it, so a
// typo gets the same "did you mean" everywhere.
func Suggest(word string, candidates []string) string {
	w := strings.ToLower(word)
	if w == "" {
		return ""
	}
	best, bestDist := "", -1
	limit := max(2, len([]rune(w))/3)
	var prefixed []string
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if len(w) >= 3 && strings.HasPrefix(lc, w) {
			prefixed = append(prefixed, c)
		}
		d := editDistance(w, lc)
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// maxWord bounds the words compared for suggestions; longer ones are not
// typos, and chat input must not buy quadratic work.
const maxWord = 64

// editDistance is the Levenshtein distance of a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > maxWord || len(rb) > maxWord {
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// slackID is a Slack ID: workspace T…, user U… or W…, channel C…/G…/D…,
// user group S…, upper-case letters and digits.
var slackID = regexp.MustCompile(`^[A-Z][A-Z0-9]{1,31}$`)

// validateSlack checks the slack section and every Slack ID the config
// names elsewhere, so a user ID without its workspace or a group's @handle
// is found at start-up instead of as a user who is silently unmapped.
// Secrets have no field here: they come from SLACK_* environment variables.
func validateSlack(ps *problems, c *Config) {
	if s := c.Slack; s != nil {
		switch s.Mode {
		case "", "http", "socket":
		default:
			ps.add("slack.mode", "%q is not one of http, socket%s", s.Mode, didYouMean(s.Mode, []string{"http", "socket"}))
		}
		if s.APIURL != "" {
			u, err := url.Parse(s.APIURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				ps.add("slack.apiURL", "%q is not an http(s) URL; it stands in for https://slack.com/api/, e.g. http://127.0.0.1:9999/api/", s.APIURL)
			}
		}
	}
	for i, u := range c.Identities.Users {
		if u.Platform != "slack" || u.ID == "" {
			continue
		}
		team, user, scoped := strings.Cut(u.ID, "/")
		if !scoped || !slackID.MatchString(team) || !slackID.MatchString(user) {
			ps.add(fmt.Sprintf("identities.users[%d].id", i), "%q is not TEAM/USER: Slack user IDs are scoped by workspace, e.g. T0123ABCD/U0456EFGH (the member ID from the user's profile, after the workspace ID)", u.ID)
		}
	}
	for i, g := range c.Identities.Groups {
		if g.Platform == "slack" && g.ID != "" && !slackID.MatchString(g.ID) {
			ps.add(fmt.Sprintf("identities.groups[%d].id", i), "%q is not a Slack user group ID: write its ID (e.g. S0789IJKL), not its @handle or name", g.ID)
		}
	}
	for i, ch := range c.Channels {
		if ch.Platform == "slack" && ch.ID != "" && !slackID.MatchString(ch.ID) {
			ps.add(fmt.Sprintf("channels[%d].id", i), slackChannelProblem, ch.ID)
		}
	}
	for i, e := range c.Environments {
		if ch := e.Channel; ch != nil && ch.Platform == "slack" && ch.ID != "" && !slackID.MatchString(ch.ID) {
			ps.add(fmt.Sprintf("environments[%d].channel.id", i), slackChannelProblem, ch.ID)
		}
	}
}

const slackChannelProblem = "%q is not a Slack channel ID: write its ID (e.g. C0123DEPLOY, from the channel's details), not its #name"
