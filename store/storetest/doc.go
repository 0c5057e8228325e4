// Package storetest is the contract test suite every store.Store backend
// must pass: create/get/update, compare-and-swap under concurrency, busy
// locks, list filters, audit order and dedupe keys.
package storetest
