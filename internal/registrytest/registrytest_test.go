package registrytest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/deploybot/deploybot/internal/poll"
	"github.com/deploybot/deploybot/internal/registrytest"
)

func TestStartAuthAndNotifications(t *testing.T) {
	var mu sync.Mutex
	var actions []string
	var auths []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Events []struct {
				Action string `json:"action"`
				Target struct {
					Repository string `json:"repository"`
					Tag        string `json:"tag"`
				} `json:"target"`
			} `json:"events"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &env)
		mu.Lock()
		defer mu.Unlock()
		auths = append(auths, r.Header.Get("Authorization"))
		for _, e := range env.Events {
			actions = append(actions, e.Action+" "+e.Target.Repository+":"+e.Target.Tag)
		}
	}))
	defer hook.Close()

	reg := registrytest.Start(t, registrytest.WithNotifications(hook.URL, http.Header{"Authorization": {"Token s3cret"}}))
	ref, err := name.NewTag(reg.Host() + "/shop/web:latest")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}

	wrong := &authn.Basic{Username: reg.User(), Password: "wrong"}
	if err := remote.Write(ref, img, remote.WithAuth(wrong)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("push with a wrong password = %v, want a 401", err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(reg.Auth())); err != nil {
		t.Fatalf("push: %v", err)
	}
	poll.Until(t, 10*time.Second, "a push notification", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range actions {
			if a == "push shop/web:latest" {
				return true, ""
			}
		}
		return false, strings.Join(actions, ", ")
	})
	mu.Lock()
	if auths[0] != "Token s3cret" {
		t.Errorf("notification Authorization = %q, want the configured header", auths[0])
	}
	mu.Unlock()

	if !strings.Contains(string(reg.DockerConfigJSON()), reg.Host()) {
		t.Errorf("DockerConfigJSON %s does not name %s", reg.DockerConfigJSON(), reg.Host())
	}

	reg.Stop()
	if _, err := http.Get(reg.URL() + "/v2/"); err == nil {
		t.Error("the registry still answers after Stop")
	}
}
