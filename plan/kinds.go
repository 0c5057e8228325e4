package plan

import (
	"fmt"
	"strings"
)

// Workload kinds deploybot handles.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// NormalizeKind maps the spellings people and kubectl use (deploy,
// deployment, sts, statefulset, any case) to KindDeployment or KindStatefulSet.
func NormalizeKind(kind string) (string, error) {
	switch strings.ToLower(kind) {
	case "deployment", "deployments", "deploy", "deployment.apps":
		return KindDeployment, nil
	case "statefulset", "statefulsets", "sts", "statefulset.apps":
		return KindStatefulSet, nil
	}
	return "", fmt.Errorf("unsupported workload kind %q (want Deployment or StatefulSet)", kind)
}
