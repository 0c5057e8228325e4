package demo

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

// gitHosting is the demo's git server. go-git picks a transport by URL
// scheme from one process-wide table, so the first demo built with HTTPS
// repositories installs gitHosting there for "https": from then on, every
// go-git fetch or push of an https:// URL in this process is answered by
// the go-git server (plumbing/transport/server) from the demo's memory
// storage, and never reaches a real HTTPS git server when a demo
// registered that URL; other https:// URLs go to the transport that served
// them before (go-git's HTTP client). Plain http:// (a test's git
// http-backend) and ssh:// are untouched. Demos register their
// repositories in it; a newer demo replaces an older one's repository of
// the same URL, so several demos in one test binary each see their own
// latest.
type gitHosting struct {
	mu    sync.RWMutex
	repos map[string]*gitRepo // by repoKey
	// next is what served https before.
	next transport.Transport
}

var (
	hosting    = &gitHosting{repos: map[string]*gitRepo{}}
	installGit sync.Once
)

// serve registers repos, installing the hosting first if no demo has.
func (h *gitHosting) serve(repos map[string]*gitRepo) {
	if len(repos) == 0 {
		return
	}
	installGit.Do(func() {
		h.next = client.Protocols["https"]
		client.InstallProtocol("https", h)
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range repos {
		h.repos[g.key] = g
	}
}

// repo is the registered repository ep names, or nil.
func (h *gitHosting) repo(ep *transport.Endpoint) *gitRepo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.repos[repoKey(ep.Host, ep.Path)]
}

// errNoTransport answers a URL no demo serves when nothing served https
// before either.
var errNoTransport = errors.New("the demo's git hosting serves only its own repositories")

func (h *gitHosting) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	g := h.repo(ep)
	if g == nil {
		if h.next == nil {
			return nil, errNoTransport
		}
		return h.next.NewUploadPackSession(ep, auth)
	}
	return server.NewClient(g).NewUploadPackSession(ep, auth)
}

func (h *gitHosting) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	g := h.repo(ep)
	if g == nil {
		if h.next == nil {
			return nil, errNoTransport
		}
		return h.next.NewReceivePackSession(ep, auth)
	}
	s, err := server.NewClient(g).NewReceivePackSession(ep, auth)
	if err != nil {
		return nil, err
	}
	return &receiveSession{ReceivePackSession: s, repo: g}, nil
}

// Load is the go-git server's view of the repository (server.Loader).
func (g *gitRepo) Load(*transport.Endpoint) (storer.Storer, error) { return g.store, nil }

// receiveSession is git receive-pack as a hosting with a protected branch
// runs it, which go-git's server does not: each ref moves only from the
// value the client saw (else "cannot lock ref", as git's refs code says),
// the rolling and stable branches only by fast-forward
// (receive.denyNonFastForwards) and never deleted. go-git's server writes
// the pushed objects; the refs are updated here.
type receiveSession struct {
	transport.ReceivePackSession
	repo *gitRepo
}

func (s *receiveSession) ReceivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error) {
	g := s.repo
	g.pushMu.Lock()
	defer g.pushMu.Unlock()
	objects := *req
	objects.Commands = nil
	if rs, err := s.ReceivePackSession.ReceivePack(ctx, &objects); err != nil {
		return rs, err
	}
	rs := packp.NewReportStatus()
	rs.UnpackStatus = "ok"
	for _, cmd := range req.Commands {
		status := "ok"
		if err := g.update(cmd); err != nil {
			status = err.Error()
		}
		rs.CommandStatuses = append(rs.CommandStatuses, &packp.CommandStatus{ReferenceName: cmd.Name, Status: status})
	}
	return rs, nil
}

// update applies one command of a push; g.pushMu is held.
func (g *gitRepo) update(cmd *packp.Command) error {
	var at plumbing.Hash
	switch ref, err := g.store.Reference(cmd.Name); {
	case err == nil:
		at = ref.Hash()
	case !errors.Is(err, plumbing.ErrReferenceNotFound):
		return err
	}
	switch {
	case cmd.Old.IsZero() && !at.IsZero():
		return fmt.Errorf("cannot lock ref '%s': reference already exists", cmd.Name)
	case at != cmd.Old:
		return fmt.Errorf("cannot lock ref '%s': is at %s but expected %s", cmd.Name, at, cmd.Old)
	}
	rolling, stable := plumbing.NewBranchReferenceName(g.cfg.RollingBranch()), plumbing.NewBranchReferenceName(g.cfg.StableBranch())
	protected := cmd.Name == rolling || cmd.Name == stable
	if cmd.Action() == packp.Delete {
		if protected {
			return fmt.Errorf("refusing to delete the protected branch %s", cmd.Name.Short())
		}
		return g.store.RemoveReference(cmd.Name)
	}
	tip, err := object.GetCommit(g.store, cmd.New)
	if err != nil {
		return fmt.Errorf("missing necessary objects: %s is not a commit here", cmd.New)
	}
	if protected && cmd.Action() == packp.Update {
		if ff, err := descends(tip, cmd.Old); err != nil || !ff {
			return fmt.Errorf("denying non-fast-forward %s (you should pull first)", cmd.Name)
		}
	}
	if err := g.store.SetReference(plumbing.NewHashReference(cmd.Name, cmd.New)); err != nil {
		return err
	}
	if cmd.Name == stable {
		select {
		case g.moved <- struct{}{}:
		default: // CI has a wake-up pending already
		}
	}
	return nil
}

// descends reports whether old is tip or one of its ancestors.
func descends(tip *object.Commit, old plumbing.Hash) (bool, error) {
	found := false
	err := object.NewCommitPreorderIter(tip, nil, nil).ForEach(func(c *object.Commit) error {
		if c.Hash == old {
			found = true
			return storer.ErrStop
		}
		return nil
	})
	if errors.Is(err, storer.ErrStop) {
		err = nil
	}
	return found, err
}
