// Command run starts a CNCF Distribution registry on 127.0.0.1 for hand use
// (htpasswd auth, deletes enabled, storage in a data directory), prints
// REGISTRY=127.0.0.1:PORT and its user and password, and runs until
// interrupted (Ctrl-C). It backs `make registry`:
//
//	go run ./hack/registry/run [-dir DIR] [-keep] [-user U] [-password P] [-notify URL [-notify-token T]]
//
// A Docker config JSON with the credentials (a pull secret's
// .dockerconfigjson, for deploybot's registry credentials) is written to
// DIR/dockerconfig.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/deploybot/deploybot/internal/registrytest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "data directory (default: a new temporary directory, removed on exit unless -keep)")
	keep := flag.Bool("keep", false, "keep the data directory on exit")
	user := flag.String("user", "deploybot", "htpasswd user")
	password := flag.String("password", "", "htpasswd password (default: random)")
	notify := flag.String("notify", "", "URL to send registry notifications to (e.g. the bot's /registry/webhooks/distribution)")
	token := flag.String("notify-token", "", "sent as `Authorization: Bearer TOKEN` with each notification")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	if *dir == "" {
		d, err := os.MkdirTemp("", "deploybot-registry-")
		if err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
		*dir = d
		if !*keep {
			defer func() { _ = os.RemoveAll(d) }()
		}
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	opts := []registrytest.Option{registrytest.WithUser(*user, *password), registrytest.WithProgress(os.Stderr)}
	if *notify != "" {
		var h http.Header
		if *token != "" {
			h = http.Header{"Authorization": {"Bearer " + *token}}
		}
		opts = append(opts, registrytest.WithNotifications(*notify, h))
	}
	reg, err := registrytest.StartProcess(ctx, *dir, opts...)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	defer reg.Stop()

	dockerConfig := filepath.Join(reg.Dir(), "dockerconfig.json")
	if err := os.WriteFile(dockerConfig, reg.DockerConfigJSON(), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", dockerConfig, err)
	}
	fmt.Fprintf(os.Stderr, "registry up at %s, data in %s, log %s\n", reg.URL(), reg.Dir(), reg.LogPath())
	if *notify != "" {
		fmt.Fprintf(os.Stderr, "  notifications to %s\n", *notify)
	}
	fmt.Fprintf(os.Stderr, "  docker config (pull secret): %s\nPress Ctrl-C to stop.\n", dockerConfig)
	fmt.Printf("REGISTRY=%s\nREGISTRY_USER=%s\nREGISTRY_PASSWORD=%s\n", reg.Host(), reg.User(), reg.Password())

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping registry")
	return nil
}
