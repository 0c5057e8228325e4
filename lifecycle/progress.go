package lifecycle

import (
	"fmt"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/plan"
)

// progressLog keeps a request's live progress lines: one line per target and
// per workload, replaced as the rollout moves.
type progressLog struct {
	mu    sync.Mutex
	keys  []string
	lines map[string]string
}

func (l *Lifecycle) progressFor(id string) *progressLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.progress[id]
	if !ok {
		p = &progressLog{lines: map[string]string{}}
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
	return p.snapshot()
}

func (p *progressLog) add(ev plan.Progress) {
	key, line := progressLine(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lines[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.lines[key] = line
}

func (p *progressLog) snapshot() []string {
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
