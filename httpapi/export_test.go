package httpapi

import "net/http"

// ClientAddr is the address the rate limits of an API built from cfg key
// r on.
func ClientAddr(cfg Config, r *http.Request) string {
	return (&server{cfg: cfg}).clientAddr(r)
}
