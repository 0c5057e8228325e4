// Package config reads and validates deploybot's YAML configuration: the
// environments it deploys to, the services (image streams) it knows, how chat
// users map to Kubernetes identities, and which channel defaults to which
// environment. Validation reports every problem with its field path.
package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	// Environments are the deploy targets (stg, prod, ...).
	Environments []Environment `json:"environments"`
	// Services are the image streams deploybot manages, with aliases.
	Services []Service `json:"services"`
	// Identities map chat users and chat groups to Kubernetes identities.
	Identities Identities `json:"identities"`
	// Channels name a default environment per chat channel.
	Channels []Channel `json:"channels,omitempty"`
	// Execution is "serviceaccount" (default: the bot's own credentials) or
	// "impersonate" (the API server enforces the requester's RBAC again).
	Execution string `json:"execution,omitempty"`
	// Store selects where requests, approvals and audit records live.
	Store Store `json:"store,omitempty"`
	// Slack configures the Slack platform of `deploybot serve`; secrets come
	// from the environment, never from this file.
	Slack *Slack `json:"slack,omitempty"`
	// Discord configures the Discord platform of `deploybot serve`.
	Discord *Discord `json:"discord,omitempty"`
	// HTTP bounds the HTTP server of `deploybot serve` (http.go).
	HTTP HTTP `json:"http,omitempty"`
	// Registry configures how deploybot reads registries itself (plain
	// Kubernetes environments): credentials and limits.
	Registry Registry `json:"registry,omitempty"`
	// Webhooks names registry hosts for the registry webhooks of `deploybot
	// serve` (webhooks.go); their secrets come from the environment.
	Webhooks *Webhooks `json:"webhooks,omitempty"`
	// Repositories are the git repositories that build the services
	// (repositories.go): import Plans list their commits.
	Repositories []Repository `json:"repositories,omitempty"`
	// Release configures `release`: how long it waits for the builds and
	// what follows them (repositories.go).
	Release Release `json:"release,omitempty"`
	// Promote configures `promote` (how long an image must run healthy
	// where it comes from).
	Promote Promote `json:"promote,omitempty"`
}

// Promote is how `promote SERVICE FROM TO` judges FROM.
type Promote struct {
	// HealthyFor is how long every pod of FROM's workloads must have been
	// Ready on the image before it may be promoted (default 10m).
	HealthyFor Duration `json:"healthyFor,omitempty"`
}

// DefaultHealthyFor is how long an image must run healthy before promote
// takes it.
const DefaultHealthyFor = 10 * time.Minute

// Healthy is how long an image must run healthy before promote takes it.
func (p Promote) Healthy() time.Duration {
	if p.HealthyFor.Duration <= 0 {
		return DefaultHealthyFor
	}
	return p.HealthyFor.Duration
}

// The platforms an environment can run on.
const (
	// PlatformOpenShift environments deploy through ImageStreams and their
	// image triggers (the default).
	PlatformOpenShift = "openshift"
	// PlatformKubernetes environments have no ImageStreams: the bot resolves
	// tags in the registry and sets the workloads' images itself.
	PlatformKubernetes = "kubernetes"
)

// DefaultPollInterval is how often a scheduled plain Kubernetes environment
// asks the registry for its tags, as OpenShift's scheduled import does.
const DefaultPollInterval = 15 * time.Minute

// Registry is how the bot reaches registries.
type Registry struct {
	// DockerConfig is a Docker config JSON file with credentials per
	// registry (the format of a kubernetes.io/dockerconfigjson pull secret,
	// e.g. a mounted secret's .dockerconfigjson); anonymous without one.
	DockerConfig string `json:"dockerConfig,omitempty"`
	// Insecure lists registry hosts reached over plain HTTP (a loopback test
	// registry); never needed for a public registry.
	Insecure []string `json:"insecure,omitempty"`
	// RevisionLabel is the image label that names the commit an image was
	// built from (default org.opencontainers.image.revision).
	RevisionLabel string `json:"revisionLabel,omitempty"`
}

// Slack is the Slack platform's configuration.
type Slack struct {
	// Mode is "http" (slash commands and interactions posted to
	// /slack/commands and /slack/interactions) or "socket" (Socket Mode).
	Mode string `json:"mode,omitempty"`
	// APIURL overrides the Slack Web API base URL (also $SLACK_API_URL).
	APIURL string `json:"apiURL,omitempty"`
}

// Discord is the Discord platform's configuration.
type Discord struct {
	// Prefix starts a message command; default "!deploy".
	Prefix string `json:"prefix,omitempty"`
	// Guilds are the guild IDs the bot listens in and registers /deploy in.
	Guilds []string `json:"guilds,omitempty"`
	// Channels, when set, restrict message commands to these channel IDs.
	Channels []string `json:"channels,omitempty"`
	// APIURL overrides Discord's REST API base URL.
	APIURL string `json:"apiURL,omitempty"`
}

// Environment is one deploy target: a namespace on a cluster.
type Environment struct {
	Name string `json:"name"`
	// Platform is "openshift" (default: ImageStreams and image triggers) or
	// "kubernetes" (the bot sets the listed workloads' images itself).
	Platform string `json:"platform,omitempty"`
	// Kubeconfig is the kubeconfig file; empty means in-cluster config, or
	// $KUBECONFIG / ~/.kube/config when not running in a cluster.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context is the kubeconfig context; empty means the current one.
	Context   string `json:"context,omitempty"`
	Namespace string `json:"namespace"`
	// Tag is the registry and ImageStream tag of this environment; defaults to Name.
	Tag string `json:"tag,omitempty"`
	// Scheduled is the importPolicy.scheduled value the env's tags should have;
	// track restores it. On a plain Kubernetes environment the bot polls the
	// registry itself every PollInterval and imports what changed.
	Scheduled bool `json:"scheduled,omitempty"`
	// PollInterval is how often a scheduled plain Kubernetes environment asks
	// the registry; default 15m, as OpenShift's scheduled import.
	PollInterval Duration `json:"pollInterval,omitempty"`
	// Confirm makes the requester press Confirm before anything happens.
	Confirm bool `json:"confirm,omitempty"`
	// Approvals is how many other people must approve, and for how long a request waits.
	Approvals Approvals `json:"approvals,omitempty"`
	// Schedule is an optional cron expression (robfig/cron) for scheduled imports.
	Schedule string `json:"schedule,omitempty"`
	// TimeZone of Schedule and Freeze, an IANA name; default UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// Freeze are the env's freeze windows (freeze.go): no changes inside.
	Freeze []FreezeWindow `json:"freeze,omitempty"`
	// Channels, when set, restrict mutating commands for this env to these channels.
	Channels []string `json:"channels,omitempty"`
	// Channel is where the scheduled imports of this env are announced: the
	// heads-up, the run's request message, skipped and missed runs.
	Channel *ChannelRef `json:"channel,omitempty"`
	// ScheduleHeadsUp is how long before a scheduled import a heads-up with a
	// Skip button is posted to Channel; zero posts none.
	ScheduleHeadsUp Duration `json:"scheduleHeadsUp,omitempty"`
	// AutoApproveScheduled approves scheduled imports by themselves; without
	// it they wait for Approvals.Count approvals like any request.
	AutoApproveScheduled bool `json:"autoApproveScheduled,omitempty"`
	// CatchUp runs a scheduled import that was missed while no replica was
	// up, once, when one is up again; without it the miss is only reported.
	CatchUp bool `json:"catchUp,omitempty"`
	// HoldAfterUndo holds what a succeeded undo or revert went back to
	// (hold ENV SERVICE), so that no import brings the bad image back
	// until someone unholds it; the undo's confirmation and approvals
	// cover the hold.
	HoldAfterUndo bool `json:"holdAfterUndo,omitempty"`
	// Feed posts the changes to this env made without the bot (feed.go).
	Feed *Feed `json:"feed,omitempty"`
}

// ChannelRef is one chat channel on one platform.
type ChannelRef struct {
	Platform string `json:"platform"`
	ID       string `json:"id"`
}

// Approvals is the approval policy of an environment.
type Approvals struct {
	Count  int      `json:"count,omitempty"`
	Expiry Duration `json:"expiry,omitempty"`
}

// Service is one image stream and the workloads it triggers.
type Service struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
	// ImageStream defaults to Name.
	ImageStream string `json:"imageStream,omitempty"`
	// Repository is the registry repository without tag, e.g. quay.io/packit/packit-worker.
	Repository string `json:"repository"`
	// Workloads, when set, replace discovery from image.openshift.io/triggers.
	Workloads []Workload `json:"workloads,omitempty"`
}

// Workload names a Deployment or StatefulSet.
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Container is the container whose image the bot sets in a plain
	// Kubernetes environment; empty means every container whose image is
	// from the service's repository.
	Container string `json:"container,omitempty"`
}

// Identities map chat users and groups to Kubernetes users and groups.
type Identities struct {
	Users  []UserMapping  `json:"users,omitempty"`
	Groups []GroupMapping `json:"groups,omitempty"`
}

// UserMapping maps one chat user to a Kubernetes user and groups.
type UserMapping struct {
	// Platform is slack, discord or terminal.
	Platform string `json:"platform"`
	// ID is the platform's user ID: Slack "TEAM/USER", Discord "GUILD/USER" or
	// "USER", terminal the --user name.
	ID     string   `json:"id"`
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
}

// GroupMapping maps a chat group (Slack user group, Discord role) to Kubernetes groups.
type GroupMapping struct {
	Platform string   `json:"platform"`
	ID       string   `json:"id"`
	Groups   []string `json:"groups"`
}

// Channel names the default environment of a chat channel.
type Channel struct {
	Platform string `json:"platform"`
	ID       string `json:"id"`
	Env      string `json:"env"`
}

// Store selects the state backend.
type Store struct {
	// Backend is "file" or "kubernetes"; empty picks kubernetes in-cluster, file elsewhere.
	Backend string `json:"backend,omitempty"`
	// Path of the file store.
	Path string `json:"path,omitempty"`
	// Namespace of the kubernetes backend's ConfigMaps and leader Lease;
	// default: the namespace the bot's pod runs in.
	Namespace string `json:"namespace,omitempty"`
	// Retention bounds how long and how many finished requests and audit
	// records the kubernetes backend keeps; zero fields take the defaults.
	Retention Retention `json:"retention,omitempty"`
}

// Retention bounds the records a store keeps.
type Retention struct {
	// Age is how long finished requests (and, in the kubernetes backend,
	// audit records) are kept; default 720h (30 days).
	Age Duration `json:"age,omitempty"`
	// Requests is how many finished requests are kept at most.
	Requests int `json:"requests,omitempty"`
	// AuditEvents is how many audit records the kubernetes backend keeps at most.
	AuditEvents int `json:"auditEvents,omitempty"`
}

// Duration is a time.Duration written as "30m", "1h".
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }
