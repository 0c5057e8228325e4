package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every deploybot metric name.
const namespace = "deploybot"

// Buckets of the histograms, in seconds.
var (
	// AckBuckets reach past Slack's 3-second deadline for acknowledging an
	// interaction, so a slow ack shows up in its own bucket.
	AckBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5}
	// RolloutBuckets span a quick Deployment roll to the default 10-minute
	// follow deadline and beyond.
	RolloutBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}
)

// PendingFunc counts the requests waiting for a person: by environment and
// by state (e.g. AwaitingConfirm, AwaitingApproval). It is called on every
// scrape, so the gauge is read from the store that every replica shares and
// is right after a restart.
type PendingFunc func(ctx context.Context) (map[PendingKey]int, error)

// PendingKey is one series of the pending gauge.
type PendingKey struct {
	Env   string
	State string
}

// Registry holds deploybot's metrics and serves them.
type Registry struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	ack            *prometheus.HistogramVec
	rollouts       *prometheus.HistogramVec
	platformErrors *prometheus.CounterVec
}

// Option configures a Registry.
type Option func(*options)

type options struct {
	pending        PendingFunc
	pendingTimeout time.Duration
	version        string
	runtime        bool
}

// WithPending adds the deploybot_approvals_pending gauge, read through fn on
// every scrape with at most timeout (default 2s) to answer.
func WithPending(fn PendingFunc, timeout time.Duration) Option {
	return func(o *options) { o.pending, o.pendingTimeout = fn, timeout }
}

// WithVersion adds deploybot_build_info{version} = 1.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithoutRuntime leaves out the Go runtime and process collectors (memory,
// goroutines, file descriptors), for tests that compare whole outputs.
func WithoutRuntime() Option { return func(o *options) { o.runtime = false } }

// New returns a Registry with every deploybot metric registered.
func New(opts ...Option) *Registry {
	o := options{pendingTimeout: 2 * time.Second, runtime: true}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Inbound chat requests (commands and button presses) by platform, command and outcome (ok, refused, invalid, error, ignored, duplicate).",
		}, []string{"platform", "command", "outcome"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "ack_latency_seconds",
			Help:      "Time from receiving a platform event to acknowledging it, by platform.",
			Buckets:   AckBuckets,
		}, []string{"platform"}),
		rollouts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "rollout_duration_seconds",
			Help:      "Time from the end of an execution until its workloads settled, failed or got stuck, by environment, action and outcome.",
			Buckets:   RolloutBuckets,
		}, []string{"env", "action", "outcome"}),
		platformErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "platform_api_errors_total",
			Help:      "Failed calls to a chat platform's API (posting or updating a message, responding), by platform and operation.",
		}, []string{"platform", "op"}),
	}
	r.reg.MustRegister(r.requests, r.ack, r.rollouts, r.platformErrors)
	if o.pending != nil {
		r.reg.MustRegister(&pendingCollector{fn: o.pending, timeout: o.pendingTimeout})
	}
	if o.version != "" {
		info := prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace:   namespace,
			Name:        "build_info",
			Help:        "Always 1; the version label says which build runs.",
			ConstLabels: prometheus.Labels{"version": o.version},
		})
		info.Set(1)
		r.reg.MustRegister(info)
	}
	if o.runtime {
		r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return r
}

// Handler serves the metrics in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Gatherer exposes the registry for tests and for embedding in another one.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Request counts one inbound request.
func (r *Registry) Request(platform, command, outcome string) {
	r.requests.WithLabelValues(platform, command, outcome).Inc()
}

// Ack observes how long an adapter took to acknowledge one platform event.
func (r *Registry) Ack(platform string, d time.Duration) {
	r.ack.WithLabelValues(platform).Observe(d.Seconds())
}

// Rollout observes how long following one request's rollouts took.
func (r *Registry) Rollout(env, action, outcome string, d time.Duration) {
	r.rollouts.WithLabelValues(env, action, outcome).Observe(d.Seconds())
}

// PlatformError counts one failed chat platform API call.
func (r *Registry) PlatformError(platform, op string) {
	r.platformErrors.WithLabelValues(platform, op).Inc()
}

// pendingCollector reads the pending requests on every scrape.
type pendingCollector struct {
	fn      PendingFunc
	timeout time.Duration
}

var (
	pendingDesc = prometheus.NewDesc(namespace+"_approvals_pending",
		"Requests waiting for the requester's confirmation or for approvals, by environment and state. Read from the shared store: every replica reports the same value, so aggregate with max, not sum.",
		[]string{"env", "state"}, nil)
	pendingUpDesc = prometheus.NewDesc(namespace+"_approvals_pending_up",
		"1 if the last scrape could read the pending requests from the store, 0 if not.",
		nil, nil)
)

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- pendingUpDesc
}

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.fn(ctx)
	if err != nil {
		// A missing gauge is better than a wrong zero; _up says why it is missing.
		ch <- prometheus.MustNewConstMetric(pendingUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingUpDesc, prometheus.GaugeValue, 1)
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n), k.Env, k.State)
	}
}
