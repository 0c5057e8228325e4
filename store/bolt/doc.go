// Package bolt is the embedded store.Store of a single deploybot process:
// one bbolt database file (state.db), written one transaction per change,
// so that the cost of a change does not grow with the state the way the
// JSON file store's rewrite of the whole document did.
//
// # Buckets
//
//	meta         "format" → "1"; "migrated" → JSON of the Migration done, if any
//	requests     ID → the store.Request as JSON
//	locks        "env/service" → the ID of the one non-terminal request holding it
//	finished     time(UpdatedAt) ‖ ID → "" for every terminal request, oldest first: retention
//	audit        sequence (8 bytes, big-endian) → the store.AuditEvent as JSON, in recording order
//	once         key → time(expiry): Once's dedupe keys
//	once-expiry  time(expiry) ‖ key → "": the same keys by expiry, for pruning
//	inbox        time(Received) ‖ sequence → the store.InboxEvent as JSON: events not done, oldest first
//	inbox-keys   key → JSON {pos, expires, done, doneAt, outcome}: the inbox's dedupe keys
//	inbox-expiry time(Received+TTL) ‖ key → "": done inbox keys by expiry, for pruning
//	pauses       env → the store.Pause as JSON
//	images       len(env) ‖ env ‖ len(service) ‖ service ‖ digest → the store.ImageRecord as JSON
//
// len(s) is the length of s as a uvarint, so that the records of one
// environment and service are the keys with one prefix, which no other
// environment's or service's keys have (a cursor's Seek lists them), and
// within it they are in digest order; Images sorts them by time. At most
// store.MaxImageRecords are kept per prefix, so RecordImage reads a bounded
// number. The images bucket came after the first databases of format 1:
// Open adds it to a database that lacks it.
//
// time(t) is t's Unix nanoseconds as 8 big-endian bytes with the sign bit
// flipped, so that byte order is time order.
//
// # Transactions
//
// Every change is one bbolt read-write transaction, and with it its
// indexes: Create checks the ID and the locks index and writes the request
// and its locks together, so there is never a request without its locks or a
// lock without its request. Update reads the request, runs fn outside any
// transaction (fn may itself use the store), then in one transaction checks
// that the stored request is byte for byte what fn started from: the
// compare-and-swap; on a conflict fn runs again on the newer version. Moving a
// request to a terminal state releases its locks in the same transaction.
// Each write transaction also prunes a bounded number of expired dedupe
// keys and finished requests past the retention age, so no transaction ever
// does work proportional to the state. An answer that needs no write (a
// duplicate key, a done event marked done again) commits nothing and costs
// no fsync.
//
// # Group commit
//
// Enqueue stores a whole batch of inbound events in one transaction, one
// fsync for all: the caller (the platform adapters' intake) gathers the
// events that arrive while the previous batch commits. Other changes are one
// transaction each; bbolt serialises writers.
//
// # Damage
//
// Open refuses a database that is damaged, loudly, naming what is wrong:
// bbolt's own checks (meta page checksums, then Tx.Check over every page),
// then Verify, which decodes every record and checks the indexes against
// the records they index. Reads check each record they decode; a damaged
// audit record is an error, never a shorter trail. A database without
// deploybot's meta bucket (another program's bbolt file) is refused too,
// never taken for an empty store. bbolt holds an exclusive lock on the file,
// so a second process fails at Open instead of sharing it.
//
// # Migration
//
// OpenMigrating opens the database and, the first time, imports the JSON
// file store it replaces (state.json and state.audit.jsonl beside it), read
// strictly by store.ReadFileState, in one transaction with a marker holding
// the files' digest; then it renames them to *.migrated-TIME as a backup. A
// crash between the two is finished on the next start (same digest); JSON
// files beside a database that holds other state are refused.
package bolt
