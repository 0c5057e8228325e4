package cluster

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// listerWatcher is the list-and-watch half of a kubeclient.Resource.
type listerWatcher[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// listWatch is the cache.ListerWatcher of r, with tweak (if any) applied to
// every list and watch. Like generated informers, it tells the reflector
// whether the client can stream its initial list (fakes cannot).
func listWatch[L runtime.Object](c EnvClient, r listerWatcher[L], tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&o)
			}
			return r.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if tweak != nil {
				tweak(&o)
			}
			return r.Watch(ctx, o)
		},
	}
	return cache.ToListWatcherWithWatchListSemantics(lw, c.Kube)
}

// informer is a namespace-indexed informer of r without resync, what
// client-go's informer factory builds for one resource, without linking the
// factory (which links every API group's informers).
func informer[L runtime.Object](c EnvClient, r listerWatcher[L], obj runtime.Object) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(listWatch(c, r, nil), obj, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
