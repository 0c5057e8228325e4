package commands

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// Cluster is what commands read from the clusters to answer read-only
// commands and to build Plans. *cluster.Set implements it. env is the
// environment name from the config.
type Cluster interface {
	// Tag returns the ImageStream tag's spec, current image and history.
	Tag(ctx context.Context, env, stream, tag string) (plan.TagState, error)
	// RegistryImage returns what importing the tag would bring now, without
	// changing anything (ImageStreamImport with spec.import false).
	RegistryImage(ctx context.Context, env, stream, tag string) (plan.Image, error)
	// TriggeredWorkloads returns the Deployments and StatefulSets whose
	// image.openshift.io/triggers follow stream:tag.
	TriggeredWorkloads(ctx context.Context, env, stream, tag string) ([]plan.Workload, error)
	// Workload returns one Deployment or StatefulSet and its rollout state.
	Workload(ctx context.Context, env, kind, name string) (plan.Workload, error)
	// Revisions returns the workload's rollout history, oldest first.
	Revisions(ctx context.Context, env, kind, name string) ([]plan.Revision, error)
	// StuckPods returns pods of an OrderedReady StatefulSet that sit on an old
	// revision and are not Ready, so the controller will not replace them.
	StuckPods(ctx context.Context, env, name string) ([]plan.StuckPod, error)
}

// ImageLookup is optionally implemented by a Cluster: what the registry has
// for any reference, looked up for a stream (ImageStreamImport with
// spec.import false and that from.name). RegistryImage only asks about the
// tag's current spec source, which for a pinned tag is the pinned image; track
// needs the registry tag's image instead. Without ImageLookup, track's Plan
// names the registry tag but cannot show its digest.
type ImageLookup interface {
	LookupImage(ctx context.Context, env, stream, ref string) (plan.Image, error)
}

// Access answers whether a Kubernetes identity may make the given API calls
// (LocalSubjectAccessReview in each call's namespace). *access.Checker implements it.
type Access interface {
	// Denied returns the calls the identity may not make, each with the API
	// server's reason; empty means all are allowed.
	Denied(ctx context.Context, env, user string, groups []string, calls []plan.Access) ([]plan.Denial, error)
}

// Deps is what the commands need from the rest of the bot.
type Deps struct {
	Config  *config.Config
	Cluster Cluster
	Access  Access
	Now     func() time.Time
	// Git, when set, lists the commits between two images' revisions for
	// import Plans (what changed) and compares stable branches for release
	// Plans.
	Git Git
}

// Git is what the commands ask of the configured repositories.
// gitrepo.Configured implements it.
type Git interface {
	GitLog
	// Compare fetches repo's rolling and stable branches and returns
	// stable's SHA, the commit it would move to (to, a full or abbreviated
	// SHA on the rolling branch; the rolling branch's head when empty) and
	// the commits between, newest first. A move that cannot be made (to
	// not on the rolling branch, not a fast-forward) is an error that says
	// which.
	Compare(ctx context.Context, repo *config.Repository, to string) (stable, target string, commits []plan.Commit, err error)
}

// GitLog lists the commits of a configured repository between two
// revisions (git log from..to, newest first); ok is false when either is
// not on the repository's rolling branch. A gitrepo.Client behind the
// repository's credentials implements it.
type GitLog interface {
	Log(ctx context.Context, repo *config.Repository, from, to string) (commits []plan.Commit, ok bool, err error)
}

// Output is a reply's content, independent of the chat platform: a title and
// sections of lines. Adapters render it (Block Kit, Discord embeds, plain text).
type Output struct {
	Title    string    `json:"title,omitempty"`
	Sections []Section `json:"sections,omitempty"`
	// Private replies go to the caller only (refusals, errors, help).
	Private bool `json:"private,omitempty"`
}

// Section is a group of lines with an optional heading. Pre sections are
// preformatted (tables, digests) and rendered in monospace.
type Section struct {
	Heading string   `json:"heading,omitempty"`
	Lines   []string `json:"lines,omitempty"`
	Pre     bool     `json:"pre,omitempty"`
	// Units marks a Pre section made of units: each unindented line with
	// the indented lines after it (a Plan's target and its "  rolls: ...").
	// A renderer may show each unit apart; any other section, a table
	// whose long rows wrap onto indented lines (help), stays whole.
	Units bool `json:"units,omitempty"`
}
