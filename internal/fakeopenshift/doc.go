// Package fakeopenshift reproduces, on the fake image clientset of
// internal/kubefake (the same reactor chain as OpenShift's generated fake
// clientset, without linking every API group), the parts of
// openshift-apiserver and openshift-controller-manager that deploybot relies
// on, so unit tests and the demo cluster exercise the same API calls `oc`
// makes against a real cluster:
//
//   - Registry: an in-memory container image registry (tags, digests,
//     injectable pull failures) that imports resolve against.
//   - Install: reactors for ImageStreamImport (openshift-apiserver
//     pkg/image/apiserver/registry/imagestreamimport/rest.go), ImageStreamTag
//     (…/registry/imagestreamtag/rest.go), and the ImageStream registry
//     strategy (…/registry/imagestream/strategy.go: resourceVersion,
//     optimistic concurrency, generation, spec tag generations), plus the
//     import the openshift-controller-manager image stream controller starts
//     when a spec tag's generation moves ahead of its status.
//   - TriggerController: the openshift-controller-manager image trigger
//     controller for Deployments and StatefulSets
//     (image.openshift.io/triggers annotations).
//
// Every reactor names the server behaviour it stands for in its comment.
// Where the fake differs from the server (things the server does
// asynchronously are done synchronously here), the comment says so.
package fakeopenshift
