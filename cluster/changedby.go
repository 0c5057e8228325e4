package cluster

import (
	"bytes"
	"strings"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Who changed an image, as TagState.ChangedBy says it when the objects name
// no client.
const (
	changedByOCTag     = "oc tag"
	changedByScheduled = "scheduled import"
	changedByImport    = "an import"
)

// managerNames maps field managers (metadata.managedFields[].manager) to
// what a chat reader knows them as. The kubectl ones are the --field-manager
// defaults of k8s.io/kubectl's commands.
var managerNames = map[string]string{
	"kubectl-set":               "kubectl set image",
	"kubectl-edit":              "kubectl edit",
	"kubectl-patch":             "kubectl patch",
	"kubectl-replace":           "kubectl replace",
	"kubectl-client-side-apply": "kubectl apply",
	// rollout restart, pause and resume; rollout undo sends no field manager
	// and shows up as "kubectl", its user agent.
	"kubectl-rollout":      "kubectl rollout",
	"helm":                 "helm",
	"argocd-controller":    "Argo CD",
	"kustomize-controller": "Flux",
	"helm-controller":      "Flux",
	fieldManager:           "deploybot",
}

// managerName is what a managedFields entry's manager is known as.
func managerName(e metav1.ManagedFieldsEntry) string {
	if e.Manager == "kubectl" && e.Operation == metav1.ManagedFieldsOperationApply {
		return "kubectl apply" // kubectl apply --server-side
	}
	if name, ok := managerNames[e.Manager]; ok {
		return name
	}
	return e.Manager
}

// touches reports whether the entry's fields name key (a FieldsV1 key such
// as `"f:image"`).
func touches(e metav1.ManagedFieldsEntry, key string) bool {
	return e.FieldsV1 != nil && bytes.Contains(e.FieldsV1.GetRawBytes(), []byte(key))
}

func clientOperation(e metav1.ManagedFieldsEntry) bool {
	return e.Operation == metav1.ManagedFieldsOperationUpdate || e.Operation == metav1.ManagedFieldsOperationApply
}

// latest is the entry with the latest time among those keep accepts; ok is
// false when there is none. Of equal times the later entry wins.
func latest(fields []metav1.ManagedFieldsEntry, keep func(metav1.ManagedFieldsEntry) bool) (metav1.ManagedFieldsEntry, bool) {
	var best metav1.ManagedFieldsEntry
	found := false
	for _, e := range fields {
		if e.Time == nil || !keep(e) {
			continue
		}
		if !found || !e.Time.Before(best.Time) {
			best, found = e, true
		}
	}
	return best, found
}

// workloadChangedBy is who last changed a workload's pod template, from its
// managedFields; "" when no entry says. An Update hands the ownership of a
// field to the manager that changed it, so the owner of a container's
// f:image set it last; managers that own only other parts of the containers
// or the template (a restart's annotation) count when no entry owns an image.
func workloadChangedBy(fields []metav1.ManagedFieldsEntry) string {
	for _, key := range []string{`"f:image"`, `"f:containers"`, `"f:template"`} {
		e, ok := latest(fields, func(e metav1.ManagedFieldsEntry) bool {
			return clientOperation(e) && e.Subresource == "" && touches(e, `"f:template"`) && touches(e, key)
		})
		if ok {
			return managerName(e)
		}
	}
	return ""
}

// streamTagChangedBy is who or what brought the image a stream tag has now:
// a client the stream's managedFields name from about when the image came
// (not the servers' own controllers), else what the tag's spec implies: a
// digest was tagged (oc tag), the scheduled importer, or an import nobody
// names (oc import-image, the bot's own imports). "" when the tag has no
// image.
func streamTagChangedBy(is *imagev1.ImageStream, tag string) string {
	var created time.Time
	found := false
	for _, l := range is.Status.Tags {
		if l.Tag == tag && len(l.Items) > 0 {
			created, found = l.Items[0].Created.Time, true
		}
	}
	if !found {
		return ""
	}
	// managedFields times have a resolution of a second, and the client's
	// write and the import that follows it need not fall in the same one;
	// a client's write long after the image came (an edit of another tag)
	// did not bring it.
	since, until := created.Add(-2*time.Second), created.Add(2*time.Second)
	e, ok := latest(is.ManagedFields, func(e metav1.ManagedFieldsEntry) bool {
		return clientOperation(e) && !serverManager(e.Manager) && !e.Time.Time.Before(since) && !e.Time.Time.After(until) &&
			// a client that only wrote annotations (a hold) moved no image
			touches(e, `"f:tags"`)
	})
	ref := specTag(is, tag)
	switch {
	case ok:
		return managerName(e)
	case ref != nil && ref.From != nil && ref.From.Kind == "DockerImage" && digestOf(ref.From.Name) != "":
		return changedByOCTag
	case ref != nil && ref.ImportPolicy.Scheduled:
		return changedByScheduled
	}
	return changedByImport
}

// serverManager reports whether a field manager is a component of OpenShift
// or Kubernetes itself (the image importer, controllers), or unnamed.
func serverManager(m string) bool {
	return m == "" || strings.HasPrefix(m, "openshift-") || strings.HasPrefix(m, "kube-")
}
