package etsy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shopledger/shopledger/internal/defaults"
)

// TokenSourceOptions configures a RefreshingTokenSource.
type TokenSourceOptions struct {
	// Skew refreshes this long before the token expires, so a request
	// does not leave with a token that dies on the way. Default 1 minute.
	Skew time.Duration
	// Now is the clock expiry is judged by; default time.Now.
	Now func() time.Time
	// OnRefresh receives every new token right after Etsy issued it and
	// before it is handed out. Etsy has already retired the old refresh
	// token at that point, so this is where to persist the new one. An
	// error is returned to the callers waiting for the refresh; the new
	// token is kept in memory either way, because it is the only one that
	// still works.
	OnRefresh func(ctx context.Context, t Token) error
	// RefreshTimeout bounds one refresh call. Default 30 s.
	RefreshTimeout time.Duration
}

// RefreshingTokenSource is an in-memory TokenSource for one shop. It
// refreshes a little before expiry, and concurrent callers share a single
// refresh (single flight) so a rotating refresh token is never spent
// twice. After Etsy answers invalid_grant it stays failed: the shop must be
// connected again.
type RefreshingTokenSource struct {
	oauth OAuthConfig
	opts  TokenSourceOptions

	mu       sync.Mutex
	cur      Token
	inflight *refreshFlight
	dead     error
}

type refreshFlight struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewRefreshingTokenSource starts from t and refreshes through o.
func NewRefreshingTokenSource(o OAuthConfig, t Token, opts TokenSourceOptions) *RefreshingTokenSource {
	defaults.Positive(&opts.Skew, time.Minute)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	defaults.Positive(&opts.RefreshTimeout, 30*time.Second)
	return &RefreshingTokenSource{oauth: o, opts: opts, cur: t}
}

// Current returns the token held now.
func (s *RefreshingTokenSource) Current() Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Token returns the access token, refreshing first when it expires within
// Skew.
func (s *RefreshingTokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	t, dead := s.cur, s.dead
	s.mu.Unlock()
	if dead != nil {
		return "", dead
	}
	if s.opts.Now().Add(s.opts.Skew).Before(t.ExpiresAt) {
		return t.AccessToken, nil
	}
	return s.Refresh(ctx, t.AccessToken)
}

// Refresh replaces stale with a new token unless that already happened.
func (s *RefreshingTokenSource) Refresh(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	if s.dead != nil {
		err := s.dead
		s.mu.Unlock()
		return "", err
	}
	if s.cur.AccessToken != stale {
		t := s.cur
		s.mu.Unlock()
		return t.AccessToken, nil
	}
	f := s.inflight
	if f == nil {
		f = &refreshFlight{done: make(chan struct{})}
		s.inflight = f
		// The refresh runs detached from this caller: if it gave up
		// half-way, Etsy could have rotated the refresh token in an
		// answer nobody reads.
		go s.run(context.WithoutCancel(ctx), f, s.cur.RefreshToken)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.AccessToken, nil
	case <-ctx.Done():
		return "", fmt.Errorf("wait for token refresh: %w", ctx.Err())
	}
}

func (s *RefreshingTokenSource) run(ctx context.Context, f *refreshFlight, refreshToken string) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RefreshTimeout)
	defer cancel()
	t, err := s.oauth.Refresh(ctx, refreshToken)
	var persistErr error
	if err == nil && s.opts.OnRefresh != nil {
		if perr := s.opts.OnRefresh(ctx, t); perr != nil {
			persistErr = fmt.Errorf("store refreshed token: %w", perr)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.cur = t
		f.tok, f.err = t, persistErr
	case errors.Is(err, ErrInvalidGrant):
		s.dead = err
		f.err = err
	default:
		f.err = err
	}
	s.inflight = nil
	close(f.done)
}

// StaticTokenSource is a fixed bearer value that cannot be refreshed, for
// scripts and tests.
type StaticTokenSource string

// Token returns the fixed value.
func (s StaticTokenSource) Token(context.Context) (string, error) { return string(s), nil }

// Refresh always fails: there is nothing to refresh with.
func (s StaticTokenSource) Refresh(context.Context, string) (string, error) {
	return "", fmt.Errorf("static token cannot be refreshed: %w", ErrInvalidToken)
}
