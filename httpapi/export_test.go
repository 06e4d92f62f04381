package httpapi

import "net/http"

// ClientAddr is the address the rate limits of an API built from cfg key
// r on.
func ClientAddr(cfg Config, r *http.Request) string {
	return (&server{cfg: cfg}).clientAddr(r)
}

// SetChainSteps lowers how far one request walks the seal and how many of
// the caller's newest sealed events it re-hashes, so that tests can watch
// the walk advance over a small log.
func SetChainSteps(s *Store, step, window int) {
	s.chain.step, s.chain.window = step, window
}
