package registry

import (
	"container/list"
	"sync"
)

// labelCache remembers what was read for a digest: its media type and the
// labels of its config. A digest names its content, so an entry never goes
// stale; the cache is bounded only to bound memory (least recently used
// entries go first).
type labelCache struct {
	mu    sync.Mutex
	max   int
	order *list.List               // front: most recently used; values are *cacheEntry
	byKey map[string]*list.Element // by digest
}

type cacheEntry struct {
	digest    string
	mediaType string
	labels    map[string]string
}

func newLabelCache(max int) *labelCache {
	return &labelCache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *labelCache) get(digest string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[digest]
	if !ok {
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return *el.Value.(*cacheEntry), true
}

func (c *labelCache) put(e cacheEntry) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[e.digest]; ok {
		el.Value = &e
		c.order.MoveToFront(el)
		return
	}
	c.byKey[e.digest] = c.order.PushFront(&e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*cacheEntry).digest)
	}
}
