package cluster

import (
	"fmt"

	"github.com/deploybot/deploybot/kubeclient"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig loads the client configuration of one environment: the given
// kubeconfig file and context, or, with neither set, the in-cluster service
// account and then the usual $KUBECONFIG / ~/.kube/config rules.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %q context %q: %w", kubeconfig, context, err)
	}
	return cfg, nil
}

// Connect builds the clients of one environment from a REST config.
func Connect(cfg *rest.Config, namespace string) (EnvClient, error) {
	cs, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return EnvClient{}, fmt.Errorf("building the Kubernetes and OpenShift image clients: %w", err)
	}
	return EnvClient{Kube: cs, Images: cs, Namespace: namespace}, nil
}

// ConnectAs builds an environment's clients that act as user and groups
// through impersonation headers, so the API server enforces the user's RBAC
// again on every call (execution: impersonate). The bot's own credentials
// need the impersonate verb on users and groups.
func ConnectAs(cfg *rest.Config, namespace, user string, groups []string) (EnvClient, error) {
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return Connect(as, namespace)
}
