package plan

import "strings"

// imageGroup is the API group of ImageStreams and their subresources.
const imageGroup = "image.openshift.io"

// The API calls executing and following a Plan makes, so that they can be
// checked for the requester (LocalSubjectAccessReview) before anything runs.
// Keep these lists in step with cluster/execute.go, imagestreams.go,
// rollback.go and rollout.go: a call missing here is one the requester was
// never checked for (cluster's TestAccessCoversExecuteAndFollow compares
// them with the calls really made).

// AccessFor returns every API call Execute and Follow make for the Plan, in a
// stable order without duplicates. Name is set where a single object is
// touched by a verb that RBAC can restrict by name (not create, list, watch).
func AccessFor(plan Plan) []Access {
	return dedupeAccess(append(ExecuteAccess(plan), FollowAccess(plan)...))
}

// ExecuteAccess returns the API calls Execute makes for the Plan.
func ExecuteAccess(plan Plan) []Access {
	ns := plan.Namespace
	var out []Access
	add := func(verb, group, resource, name string) {
		out = append(out, Access{Verb: verb, Group: group, Resource: resource, Namespace: ns, Name: name})
	}
	for _, t := range plan.Targets {
		if t.Unchanged {
			continue
		}
		if plan.Action == ActionHold || plan.Action == ActionUnhold {
			out = append(out, holdAccess(plan, t)...)
			continue
		}
		if plan.Kubernetes() && plan.Action != ActionRollback {
			// The bot is the image-trigger controller: it reads each
			// workload and patches its containers' images.
			for _, w := range t.Workloads {
				if r := workloadResource(w.Kind); r != "" {
					add("get", "apps", r, w.Name)
					add("patch", "apps", r, w.Name)
				}
			}
			for _, p := range t.DeletePods {
				add("get", "", "pods", p)
				add("delete", "", "pods", p)
			}
			continue
		}
		switch plan.Action {
		case ActionImport:
			// RegistryImage check (lookup import) and the import itself.
			add("get", imageGroup, "imagestreams", t.Stream)
			add("create", imageGroup, "imagestreamimports", "")
		case ActionPin, ActionPromote, ActionTrack:
			// oc tag: ImageStreamTag update, create, then the stream's spec.
			add("update", imageGroup, "imagestreamtags", t.Stream+":"+t.Tag)
			add("create", imageGroup, "imagestreamtags", "")
			add("get", imageGroup, "imagestreams", t.Stream)
			add("update", imageGroup, "imagestreams", t.Stream)
			if plan.Action == ActionTrack {
				add("create", imageGroup, "imagestreamimports", "")
			}
		case ActionRollback:
			for _, w := range t.Workloads {
				if w.Triggered {
					continue
				}
				switch kind, _ := NormalizeKind(w.Kind); kind {
				case KindDeployment:
					add("get", "apps", "deployments", w.Name)
					add("list", "apps", "replicasets", "")
					add("patch", "apps", "deployments", w.Name)
				case KindStatefulSet:
					add("get", "apps", "statefulsets", w.Name)
					add("list", "apps", "controllerrevisions", "")
					add("patch", "apps", "statefulsets", w.Name)
				}
			}
		}
		if len(t.DeletePods) > 0 {
			if plan.Action.PinsTag() || plan.Action == ActionTrack {
				// waiting for the trigger to update the template
				add("list", "apps", "statefulsets", "")
				add("watch", "apps", "statefulsets", "")
			}
			for _, p := range t.DeletePods {
				add("get", "", "pods", p)
				add("delete", "", "pods", p)
			}
		}
	}
	return dedupeAccess(out)
}

// holdAccess is what holding (or unholding) one target takes: on OpenShift
// the stream (its spec tag and the hold annotation) and the workloads
// whose triggers pause or resume; on plain Kubernetes the workloads' hold
// annotation.
func holdAccess(plan Plan, t Target) []Access {
	ns := plan.Namespace
	var out []Access
	var workloads []string
	if plan.Kubernetes() {
		for _, w := range t.Workloads {
			workloads = append(workloads, w.Kind+"/"+w.Name)
		}
	} else {
		out = append(out,
			Access{Verb: "get", Group: imageGroup, Resource: "imagestreams", Namespace: ns, Name: t.Stream},
			Access{Verb: "update", Group: imageGroup, Resource: "imagestreams", Namespace: ns, Name: t.Stream})
		if t.Hold != nil {
			workloads = t.Hold.Paused
		}
	}
	for _, w := range workloads {
		kind, name, _ := strings.Cut(w, "/")
		if r := workloadResource(kind); r != "" {
			if plan.Kubernetes() {
				out = append(out, Access{Verb: "patch", Group: "apps", Resource: r, Namespace: ns, Name: name})
				continue
			}
			// the triggers annotation, patched at the resourceVersion read
			out = append(out,
				Access{Verb: "get", Group: "apps", Resource: r, Namespace: ns, Name: name},
				Access{Verb: "patch", Group: "apps", Resource: r, Namespace: ns, Name: name})
		}
	}
	return out
}

// FollowAccess returns the API calls Follow makes for the Plan's workloads:
// it watches (list and watch) their kinds and the namespace's pods.
func FollowAccess(plan Plan) []Access {
	if plan.Action == ActionHold {
		return nil // nothing rolls (an unhold may: the tag moved meanwhile)
	}
	var deps, sets bool
	for _, t := range plan.Targets {
		if t.Unchanged {
			continue
		}
		for _, w := range t.Workloads {
			if plan.Action == ActionRollback && w.Triggered {
				continue
			}
			switch kind, _ := NormalizeKind(w.Kind); kind {
			case KindDeployment:
				deps = true
			case KindStatefulSet:
				sets = true
			}
		}
	}
	if !deps && !sets {
		return nil
	}
	ns := plan.Namespace
	var out []Access
	if deps {
		out = append(out,
			Access{Verb: "list", Group: "apps", Resource: "deployments", Namespace: ns},
			Access{Verb: "watch", Group: "apps", Resource: "deployments", Namespace: ns})
	}
	if sets {
		out = append(out,
			Access{Verb: "list", Group: "apps", Resource: "statefulsets", Namespace: ns},
			Access{Verb: "watch", Group: "apps", Resource: "statefulsets", Namespace: ns})
	}
	return append(out,
		Access{Verb: "list", Resource: "pods", Namespace: ns},
		Access{Verb: "watch", Resource: "pods", Namespace: ns})
}

// workloadResource is the apps/v1 resource of a workload kind, or "".
func workloadResource(kind string) string {
	switch k, _ := NormalizeKind(kind); k {
	case KindDeployment:
		return "deployments"
	case KindStatefulSet:
		return "statefulsets"
	}
	return ""
}

func dedupeAccess(in []Access) []Access {
	seen := make(map[Access]bool, len(in))
	out := in[:0:0]
	for _, a := range in {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Denial is one API call an identity may not make.
type Denial struct {
	Access Access
	Reason string
}
