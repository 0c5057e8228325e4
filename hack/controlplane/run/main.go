// Command run starts deploybot's local test control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok with one fake
// node), prints KUBECONFIG=<path> for an admin kubeconfig, and runs until
// interrupted (Ctrl-C), then stops everything. It backs `make cluster`:
//
//	go run ./hack/controlplane/run [-dir DIR] [-keep]
//
// Kubeconfig files for the other test users (alice, bob, carol, deploybot)
// are written next to the admin one as kubeconfig-<user>.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/deploybot/deploybot/internal/controlplane"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "data directory (default: a new temporary directory, removed on exit unless -keep)")
	keep := flag.Bool("keep", false, "keep the data directory on exit")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	if *dir == "" {
		d, err := os.MkdirTemp("", "deploybot-cluster-")
		if err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
		*dir = d
		if !*keep {
			defer func() { _ = os.RemoveAll(d) }()
		}
	}

	cp, err := controlplane.StartProcess(ctx, *dir)
	if err != nil {
		return fmt.Errorf("starting control plane: %w", err)
	}
	defer cp.Stop()

	fmt.Fprintf(os.Stderr, "control plane up at %s, data in %s\n", cp.Host(), cp.Dir())
	for _, u := range cp.Users() {
		fmt.Fprintf(os.Stderr, "  user %-10s groups %v kubeconfig %s\n", u.Name, u.Groups, cp.UserKubeconfigPath(u.Name))
	}
	fmt.Fprintf(os.Stderr, "  kubectl: %s/kubectl\nPress Ctrl-C to stop.\n", cp.BinDir())
	fmt.Printf("KUBECONFIG=%s\n", cp.KubeconfigPath())

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping control plane")
	return nil
}
