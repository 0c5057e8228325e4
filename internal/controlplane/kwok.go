package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// NodeName is the fake node kwok manages; pods are scheduled onto it.
const NodeName = "kwok-node-0"

// KwokNodeAnnotation marks nodes that kwok manages (its
// --manage-nodes-with-annotation-selector).
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// brokenPodStage keeps pods with a container image containing "broken" (for
// example "x:broken") Running but never Ready, as if a readiness probe kept
// failing. It is kwok's pod-ready stage with a selector on the image and a
// status that says not ready. Its weight (1, against the default 0 of
// kwok's pod-ready stage, which matches the same pods) makes kwok always
// choose it; once the pod is Running, pod-ready (Pending only) no longer
// matches.
const brokenPodStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-broken-never-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  weight: 1
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.spec.containers.[].image | contains("broken")'
      operator: 'In'
      values:
      - 'true'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
        reason: ContainersNotReady
        message: "containers with unready status: readiness probe failed (controlplane broken image)"
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
        reason: ContainersNotReady
        message: "containers with unready status: readiness probe failed (controlplane broken image)"

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}

      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
`

// writeKwokConfig concatenates kwok's node and pod stage files from
// <binDir>/../stages and the broken-image stage into one multi-document
// config file for kwok --config.
func writeKwokConfig(binDir, path string) error {
	var files []string
	for _, kind := range []string{"node", "pod"} {
		matches, err := filepath.Glob(filepath.Join(binDir, "..", "stages", kind, "*.yaml"))
		if err != nil {
			return fmt.Errorf("listing kwok %s stages: %w", kind, err)
		}
		if len(matches) == 0 {
			return fmt.Errorf("no kwok %s stage files in %s", kind, filepath.Join(binDir, "..", "stages", kind))
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	var buf bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading kwok stage: %w", err)
		}
		fmt.Fprintf(&buf, "# from %s\n%s\n---\n", filepath.Base(f), bytes.TrimSpace(data))
	}
	buf.WriteString(brokenPodStage)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing kwok config: %w", err)
	}
	return nil
}

// createKwokNode creates the fake node the way kwok's documentation shows,
// except without the NoSchedule taint, so ordinary workloads land on it.
func createKwokNode(ctx context.Context, cs kubernetes.Interface, name string) error {
	qty := func(s string) resource.Quantity { return resource.MustParse(s) }
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    qty("32"),
		corev1.ResourceMemory: qty("256Gi"),
		corev1.ResourcePods:   qty("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl": "0",
				KwokNodeAnnotation:             "fake",
			},
			Labels: map[string]string{
				"beta.kubernetes.io/arch":       "amd64",
				"beta.kubernetes.io/os":         "linux",
				"kubernetes.io/arch":            "amd64",
				"kubernetes.io/hostname":        name,
				"kubernetes.io/os":              "linux",
				"kubernetes.io/role":            "agent",
				"node-role.kubernetes.io/agent": "",
				"type":                          "kwok",
			},
		},
		Status: corev1.NodeStatus{
			Allocatable: resources,
			Capacity:    resources,
			Phase:       corev1.NodeRunning,
			NodeInfo: corev1.NodeSystemInfo{
				Architecture:    "amd64",
				OperatingSystem: "linux",
				KubeletVersion:  "fake",
			},
		},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	return nil
}

// nodeReady reports whether the node is Ready and free of the not-ready and
// unreachable taints the node lifecycle controller manages.
func nodeReady(n *corev1.Node) bool {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	return ready
}
