package lifecycle

import (
	"fmt"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/plan"
)

// ProgressLog keeps a request's live progress lines: one line per target
// and per workload, replaced as the rollout moves. The deploy feed keeps
// one per change it follows.
type ProgressLog struct {
	mu    sync.Mutex
	keys  []string
	lines map[string]string
}

// NewProgressLog returns an empty ProgressLog.
func NewProgressLog() *ProgressLog { return &ProgressLog{lines: map[string]string{}} }

func (l *Lifecycle) progressFor(id string) *ProgressLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.progress[id]
	if !ok {
		p = NewProgressLog()
		l.progress[id] = p
	}
	return p
}

// Progress returns the live progress lines of a request executing on this
// replica; none for any other.
func (l *Lifecycle) Progress(id string) []string {
	l.mu.Lock()
	p, ok := l.progress[id]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	return p.Lines()
}

// Add replaces the line of ev's target or workload with ev.
func (p *ProgressLog) Add(ev plan.Progress) {
	key, line := progressLine(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lines[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.lines[key] = line
}

// Lines returns the lines, in the order their targets and workloads first
// reported.
func (p *ProgressLog) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.keys))
	for _, k := range p.keys {
		out = append(out, p.lines[k])
	}
	return out
}

func progressLine(ev plan.Progress) (key, line string) {
	if ev.Workload.Name == "" {
		line = ev.Service + ": " + ev.Phase
		if ev.Message != "" {
			line += ": " + ev.Message
		}
		return "target/" + ev.Service, line
	}
	w := strings.ToLower(ev.Workload.Kind) + "/" + ev.Workload.Name
	if ev.Workload.Kind == plan.KindBuild {
		// a release's image build: no replicas, just what is known
		return "workload/" + w, ev.Workload.Name + " image: " + ev.Message
	}
	line = fmt.Sprintf("%s: %s, %d/%d updated, %d/%d ready", w, ev.Phase, ev.Updated, ev.Desired, ev.Ready, ev.Desired)
	if ev.Message != "" {
		line += " (" + ev.Message + ")"
	}
	return "workload/" + w, line
}
