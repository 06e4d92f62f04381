// Package systemtest holds the whole-system test: it builds the
// real binaries (etsysim, ingest, projector, query, ledger), runs them as
// separate processes against a fresh PostgreSQL database and the local Etsy
// simulator over HTTP, drives orders, restocks, listing edits,
// cancellations, shipments and deliveries with webhooks dropped and
// duplicated, reconciles once, and checks through the query API alone that
// the ledger agrees with the simulator, that low-stock alerts were raised
// and delivered exactly as the stock history says, that the sealed log
// verifies (its signed heads too), that a rebuild of the read models gives
// the same answers, and that the whole ledger, backed up and restored into
// a brand-new cluster, carries on there with new orders.
//
// Beside it, the deployment tests run the services as an operator would,
// behind Caddy with deploy/caddy/Caddyfile (deployment_test.go sets such a
// deployment up; proxy_test.go is the TLS proxy's test, traces_test.go
// follows a webhook's trace, twoofeach_test.go kills one of two of each
// service during a webhook soak).
//
// The browser tests (browser*_test.go) start the system as make run
// does and drive its pages in headless Chromium with chromedp: every page
// as a visitor, an owner, a staff member and an auditor, screenshotted at
// 1280 and 390 px and checked with the vendored axe-core
// (testdata/axe, from make assets), then a seller's flow compared step by
// step with /v1. Without Chromium they skip, naming
// scripts/chromium-ensure; under CI=true they fail.
//
// The package has no code of its own: the whole-system test is
// system_test.go, its process and HTTP plumbing harness_test.go. It is skipped under -short
// and needs the go tool and PostgreSQL (see pgtest); it never reads
// anything outside the module.
package systemtest
