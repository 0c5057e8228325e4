// Package kube is the Kubernetes backend of store.Store, for deploybot
// running in a cluster with several replicas: every record is a ConfigMap in
// the bot's own namespace, every change a compare-and-swap on the object's
// resourceVersion, so the API server (etcd) is the single arbiter between
// replicas. It also runs the leader election (a coordination.k8s.io Lease in
// the same namespace) that decides which replica runs the scheduler and the
// sweeper.
//
// # ConfigMaps, not Secrets
//
// The records hold request plans (image references and digests), chat user
// and Kubernetes user names, approvals and the audit trail: operational
// data, no credentials; the chat platforms' tokens stay in the Secret the
// chart mounts. ConfigMaps say that, and they keep the bot's RBAC honest: it
// needs get/list/create/update/delete on configmaps in its namespace and
// nothing on secrets, so a compromise of the bot (or of the store's
// permissions) exposes no Secret of that namespace, and operators can read
// the state with `kubectl get cm -l deploybot.dev/kind=request` without being
// granted Secret access. Secrets would buy nothing here: they are not
// encrypted at rest unless the cluster configures it (then configure it for
// ConfigMaps too), and the data is not secret from anyone who may read the
// namespace.
//
// # Objects
//
// All objects carry app.kubernetes.io/managed-by=deploybot,
// deploybot.dev/instance=INSTANCE (default "deploybot", so several bots may
// share a namespace) and deploybot.dev/kind:
//
//   - request: INSTANCE-req-ID, data request.json, label deploybot.dev/state
//     so that List asks the API server only for the states it wants.
//   - lock: INSTANCE-lock-KEY (one per "env/service" key), data lock and
//     request (the holder's ID).
//   - once: INSTANCE-once-HASH, a dedupe key, annotation deploybot.dev/expires.
//   - audit: INSTANCE-audit-NANOS-SEQ-RAND, one per event, data event.json;
//     names sort in recording order.
//   - pauses: INSTANCE-pauses, one data key per paused environment.
//   - inbox: INSTANCE-inbox-HASH, one per inbound event, named after its
//     dedupe key; data event.json (the store.InboxEvent, payload included,
//     so at most about 700 KiB of payload fit the 1 MiB of an object) and,
//     once done, outcome; label deploybot.dev/inbox pending or done;
//     annotations deploybot.dev/received, deploybot.dev/expires (received
//     plus TTL) and deploybot.dev/order (the enqueueing clock and the index
//     in the batch, the tiebreak of events received at once).
//   - images: INSTANCE-images-ENV-SERVICE-HASH, one per environment and
//     service that has image records (a readable part, cut to 60
//     characters, and a hash of both names); data images.json, the
//     store.ImageRecords as a JSON array newest first (at most
//     store.MaxImageRecords, some 25 KiB); annotations deploybot.dev/env and
//     deploybot.dev/service. RecordImage is a compare-and-swap on its
//     resourceVersion, retried on conflict like SetPause; one object per
//     service rather than per environment keeps an environment of many
//     services clear of the 1 MiB limit, and keeps writes for different
//     services from conflicting.
//
// # Exactly once
//
// Update reads the request, applies fn and writes it back with the
// resourceVersion it read; a 409 Conflict means another writer won, so fn
// runs again on the newer version (unbounded but for ctx, with a short
// jittered backoff). Two replicas racing Approved → Executing both send an
// update naming the same resourceVersion; etcd accepts one.
//
// # Busy locks
//
// A request that holds locks is created in three steps, each atomic on the
// server: (1) create its ConfigMap marked deploybot.dev/pending (Get, Update
// and List do not see pending requests); (2) for each lock in sorted order,
// Create the lock ConfigMap naming the request: AlreadyExists means another
// request holds it; (3) Update the request to drop the pending mark. If a
// lock is busy, the locks taken so far and the pending request are deleted
// and a *store.BusyError names the holder. Create is the atomic test-and-set,
// so of many racing creators exactly one gets each lock; sorted order and
// never waiting rule out deadlock. When an Update moves a request to a
// terminal state the store deletes its locks (each only if it still names
// the request, with a resourceVersion precondition). A lock is stale, and is
// deleted (with a resourceVersion precondition, so only one racer does it)
// and taken, when its holder is gone, terminal, or pending for longer than
// the abandon timeout (a creator that died between steps); in that last case
// the holder's pending ConfigMap is deleted first, so a creator that was
// only slow fails its step (3) instead of committing a second holder.
// Because the request exists before its locks, a lock whose holder does not
// exist is always stale.
//
// # Dedupe keys
//
// Once creates the key's ConfigMap: created means first. AlreadyExists with
// an expiry in the past means a stale key: it is deleted with a
// resourceVersion precondition and created again, so of racing callers after
// expiry exactly one sees true.
//
// # Inbox
//
// Enqueue creates one ConfigMap per event of the batch, in parallel: Create
// is the atomic test-and-set of the dedupe key across replicas (as for
// Once), and the parallel creates cost about one round trip for the batch,
// since etcd commits concurrent writes together. One ConfigMap per batch
// would be one write, but could not check the keys atomically against the
// other batches. So there is no transaction over the batch: if Enqueue
// fails, some of its events may be stored; they are in the Inbox and are
// handled, and a retry finds them as duplicates. AlreadyExists means a
// duplicate unless the event is done and its key expired: then that version
// is deleted (resourceVersion precondition) and created anew. InboxDone is a
// compare-and-swap relabelling the event done; Prune deletes it after its key
// expires. Inbox lists the pending label only.
//
// # Retention
//
// Prune, run by the leader, deletes finished requests past the retention age
// or beyond the newest N, audit events past the age or beyond the newest M,
// expired dedupe keys, done inbox events whose key expired, abandoned
// pending requests and stale locks. The
// deletions are idempotent, so a second pruner is harmless.
package kube
