package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shopledger/shopledger/tokens"
)

// Authenticator turns a bearer secret into the principal of a live
// token: who is asking and which shops they may see.
type Authenticator interface {
	ResolvePrincipal(ctx context.Context, secret string) (Principal, error)
}

// Principal is who is asking and what they may see; tokens owns the
// type, handlers name it briefly.
type Principal = tokens.Principal

// Role says which endpoints a token may use.
type Role = tokens.Role

// The roles, as tokens defines them.
const (
	RoleSeller  = tokens.RoleSeller
	RoleAuditor = tokens.RoleAuditor
)

type principalKey struct{}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalOf returns the request's principal. Routes behind authenticate
// always have one; a missing one is a wiring bug and fails closed.
func principalOf(ctx context.Context) (Principal, error) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	if !ok {
		return Principal{}, errors.New("no principal in request context")
	}
	return p, nil
}

// bearer extracts the token from the Authorization header. Tokens in the
// query string (access_token=…) are deliberately never looked at: URLs end
// up in logs, browser history and Referer headers.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

// authenticate resolves the token and the shops it may see.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearer(r)
		if !ok {
			s.metrics.authFailures.WithLabelValues("missing").Inc()
			s.errs.write(w, r, fmt.Errorf("no bearer token: %w", ErrUnauthenticated))
			return
		}
		p, err := s.cfg.Tokens.ResolvePrincipal(r.Context(), secret)
		if err != nil {
			if errors.Is(err, tokens.ErrBadToken) {
				s.metrics.authFailures.WithLabelValues("invalid").Inc()
				err = fmt.Errorf("%w: %w", ErrUnauthenticated, err)
			}
			s.errs.write(w, r, err)
			return
		}
		if !s.limitToken(w, r, p.TokenID) {
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// requireRole lets through only tokens of the given role.
func (s *server) requireRole(role Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := principalOf(r.Context())
			if err != nil {
				s.errs.write(w, r, err)
				return
			}
			if p.Role != role {
				s.errs.write(w, r, ErrForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
