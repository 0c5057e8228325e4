// Package storetest is the contract test suite every store.Store backend
// must pass: create/get/update, compare-and-swap under concurrency, busy
// locks, list filters (requests in unknown states included), audit order,
// dedupe keys, the inbox of inbound events and the image records.
package storetest
