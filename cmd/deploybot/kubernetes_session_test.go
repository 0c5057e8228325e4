package main

import (
	"os"
	"regexp"
	"testing"
	"time"
)

// kubernetesConfig is the shipped plain Kubernetes example, relative to
// this package.
const kubernetesConfig = "../../examples/kubernetes.yaml"

// TestKubernetesSession is the plain Kubernetes demo
// (`deploybot chat --demo --config examples/kubernetes.yaml`) typed through
// stdin as alice, bob and carol: the bot reads the tag from what the
// workloads run and the demo's OCI registry, imports by setting the
// containers to REPO:TAG@DIGEST, pins and follows the tag again, and undoes
// a Deployment with a plain rollback. `-run TestKubernetesSession -args
// -transcript FILE` writes the session out (docs/demo-kubernetes-session.txt).
func TestKubernetesSession(t *testing.T) {
	s := startChat(t, "--config", kubernetesConfig)
	s.send("status")
	s.expect(`(?s)dev \(namespace shop-dev\):.*web\s+[0-9a-f]{12}\s+tracking.*worker\s+[0-9a-f]{12}\s+tracking.*prod \(namespace shop-prod\):`)

	s.send("images web prod")
	m := s.expect(`(?s)source: tracking registry.demo.local/shop/web:prod\s+DIGEST\s+IMPORTED\s+\* ([0-9a-f]{12}) .*?current\s+([0-9a-f]{12}) `)
	webOld, webPrevious := m[1], m[2]

	// The registry has newer images than prod runs, and says what they were built from.
	s.send("status prod")
	s.expect("(?s)web:\\s+image\\s+" + webOld + ".*?build\\s+built from web@[0-9a-f]{7}\\s+registry has [0-9a-f]{12}, built [^(]*\\(built from web@[0-9a-f]{7}\\): `import prod web`")

	s.send("@carol import prod")
	s.expect(`carol may not do this in prod; the cluster's RBAC refuses`)

	s.send("import prod")
	id := s.expect(`#([a-z2-7]{10}) import prod: waiting for the requester to confirm`)[1]
	p := s.expect(`(?s)web: ` + webOld + ` → ([0-9a-f]{12})\s+rolls: deployment/web\s+built from web@[0-9a-f]{7}\s+worker: ([0-9a-f]{12}) → ([0-9a-f]{12})\s+rolls: statefulset/worker\s+built from worker@[0-9a-f]{7}.*expires in 1h`)
	webNew, workerOld, workerNew := p[1], p[2], p[3]
	s.send("confirm #" + id)
	s.expect(`#` + id + ` import prod: waiting for approval`)
	s.send("approve #" + id)
	s.expect(`you requested #` + id + `; someone else must approve it`)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` import prod: succeeded`)
	s.expect(`Done: .*2/2 workloads settled; approved by bob\.`)
	s.send("status prod")
	s.expect(`(?s)web:\s+image\s+` + webNew + `\s+imported [^\n]*\s+source\s+tracking registry.demo.local/shop/web:prod\s+import\s+scheduled off\s+build\s+built from web@[0-9a-f]{7}\s+deployment/web\s+1/1 ready\s+settled\n`)
	s.expect(`(?s)worker:\s+image\s+` + workerNew + `.*?statefulset/worker\s+2/2 ready\s+settled\n`)

	// The bot sets what it resolved in the registry, pinned by digest.
	s.send("images web prod")
	s.expect(`(?s)\* ` + webNew + `\s+\S+ ago\s+current.*registry.demo.local/shop/web:prod@sha256:` + webNew)

	s.send("revert worker prod " + workerOld[:7])
	id = s.expect(`#([a-z2-7]{10}) revert worker prod "?` + workerOld[:7] + `"?: waiting for the requester to confirm`)[1]
	s.expect(`worker: ` + workerNew + ` → ` + workerOld)
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` revert worker prod "?\w+"?: succeeded`)
	s.send("status prod")
	s.expect(`(?s)worker:\s+image\s+` + workerOld + `.*?source\s+pinned registry.demo.local/shop/worker@sha256:` + workerOld)

	s.send("track worker prod")
	id = s.expect(`#([a-z2-7]{10}) track worker prod: waiting for the requester to confirm`)[1]
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` track worker prod: succeeded`)
	s.send("status prod")
	s.expect(`(?s)worker:\s+image\s+` + workerNew + `.*?source\s+tracking registry.demo.local/shop/worker:prod\s+import\s+scheduled off`)

	// No image triggers: undo is the plain rollback to the previous revision.
	s.send("undo web prod")
	id = s.expect(`#([a-z2-7]{10}) undo web prod: waiting for the requester to confirm`)[1]
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` undo web prod: succeeded`)
	s.send("status prod")
	s.expect(`(?s)web:\s+image\s+` + webOld + `.*?deployment/web\s+1/1 ready\s+settled\n`)
	s.send("history web prod")
	s.expect(`(?s)deployment/web:\s+REVISION\s+IMAGE\s+CHANGE-CAUSE.*\n\s+2\s+web:prod@` + webPrevious + `.*\n\s+4\s+web:prod@` + webNew + `.*\n\s+\* 5\s+web:prod@` + webOld)

	// dev was left alone.
	s.send("status dev")
	s.expect(`(?s)web:\s+image\s+[0-9a-f]{12}.*?source\s+tracking registry.demo.local/shop/web:latest\s+import\s+scheduled on`)

	if err := s.in.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("chat ended with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chat did not end after its input closed")
	}
	if out := s.out.String(); regexp.MustCompile(`does not follow the tag|panic`).MatchString(out) {
		t.Errorf("the session says something it should not:\n%s", out)
	}
	if *transcript != "" {
		if err := os.WriteFile(*transcript, []byte(s.out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
