package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// watched is one connection the probe holds open and when the server cut it.
type watched struct {
	opened time.Time // slow: when opened; idle: when its response ended
	cut    time.Time // zero while open
}

// slowClients is row 5: 200 connections that send a request body one byte
// every 3 s and 100 idle keep-alive connections, against one serve.
func (p *probe) slowClients(ctx context.Context) ([]row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return nil, err
	}
	defer s.close()
	b, err := p.serve(ctx, serveOpts{env: s.env(false), name: "row5-conns"})
	if err != nil {
		return nil, err
	}
	defer b.stop()
	time.Sleep(500 * time.Millisecond)
	before := b.fds()

	const nSlow, nIdle = 200, 100
	conns := make([]*watched, nSlow+nIdle)
	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	}()
	dial := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", b.addr, err)
		}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		return c, nil
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nSlow {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		w := &watched{opened: time.Now()}
		conns[i] = w
		head := "POST /slack/commands HTTP/1.1\r\nHost: " + b.addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n"
		if _, err := c.Write([]byte(head)); err != nil {
			return nil, fmt.Errorf("writing a slow request's head: %w", err)
		}
		wg.Go(func() { // one byte every 3 s
			t := time.NewTicker(3 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		})
		wg.Go(func() { // anything from the server, or the close, is the cut
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			mu.Lock()
			w.cut = time.Now()
			mu.Unlock()
		})
	}
	for i := range nIdle {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + b.addr + "\r\n\r\n")); err != nil {
			return nil, fmt.Errorf("writing an idle connection's request: %w", err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, fmt.Errorf("reading /healthz on a keep-alive connection: %w", err)
		}
		_, _ = bufio.NewReader(resp.Body).WriteTo(devNull{})
		_ = resp.Body.Close()
		w := &watched{opened: time.Now()}
		conns[nSlow+i] = w
		wg.Go(func() {
			buf := make([]byte, 512)
			_, _ = br.Read(buf)
			mu.Lock()
			w.cut = time.Now()
			mu.Unlock()
		})
	}
	time.Sleep(2 * time.Second)
	during := b.fds()

	deadline := time.Now().Add(p.o.observe)
	allCut := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range conns {
			if w.cut.IsZero() {
				return false
			}
		}
		return true
	}
	for time.Now().Before(deadline) && !allCut() && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	after := b.fds()
	close(stop)

	mu.Lock()
	slow := summarize(conns[:nSlow], p.o.observe)
	idle := summarize(conns[nSlow:], p.o.observe)
	mu.Unlock()
	// A request still works.
	health := "GET /healthz afterwards: "
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + b.addr + "/healthz"); err != nil {
		health += err.Error()
	} else {
		health += resp.Status
		_ = resp.Body.Close()
	}
	return []row{
		{n: "5", scenario: fmt.Sprintf("%d connections send a POST /slack/commands head (Content-Length: 4000), then one body byte every 3 s (no signature needed)", nSlow),
			now:      fmt.Sprintf("%s, from opening; open fds of serve: %d before, %d with all %d connections open, %d after", slow, before, during, nSlow+nIdle, after),
			previous: "previous: all still open after 30 s; fds 11 → 353. Goal: cut within seconds (http.bodyTimeout 5s, readTimeout 10s by default)"},
		{n: "5", scenario: fmt.Sprintf("%d keep-alive connections idle after one GET /healthz (at the same time)", nIdle),
			now:      fmt.Sprintf("%s, from the end of their response; %s", idle, health),
			previous: "previous: all still open after 30 s. Goal: cut within seconds (http.idleTimeout 15s by default)"},
	}, nil
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// summarize says how many of ws were cut while watched and when.
func summarize(ws []*watched, watched time.Duration) string {
	var d []time.Duration
	for _, w := range ws {
		if !w.cut.IsZero() {
			d = append(d, w.cut.Sub(w.opened))
		}
	}
	if len(d) == 0 {
		return fmt.Sprintf("0 of %d cut within the %.0f s watched", len(ws), watched.Seconds())
	}
	slices.Sort(d)
	return fmt.Sprintf("%d of %d cut; after %.1f s (first) / %.1f s (median) / %.1f s (last)",
		len(d), len(ws), d[0].Seconds(), d[len(d)/2].Seconds(), d[len(d)-1].Seconds())
}
