// Package etsy speaks Etsy's Open API v3 wire format: an HTTP client with a
// shared rate limiter and token refresh, OAuth 2.0 with PKCE, and
// the Etsy webhook payload (its signature is package stdwebhooks').
//
// Everything here is written against the facts in Etsy's public
// documentation and generated OpenAPI spec, so the same code works against
// openapi.etsy.com and against the local simulator in package etsysim.
package etsy
