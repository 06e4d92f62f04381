package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/internal/defaults"
)

// SessionConfig sets how long sessions live and how their cookie is sent.
type SessionConfig struct {
	// Idle ends a session unused for this long (default 12 hours).
	Idle time.Duration
	// Absolute ends a session this long after login, however active
	// (default 7 days).
	Absolute time.Duration
	// Secure sends the cookie over HTTPS only, under the __Host- prefix
	// (which also pins it to this host and path /). Turn it off only to
	// serve plain HTTP on a development machine.
	Secure bool
}

func (c SessionConfig) withDefaults() SessionConfig {
	defaults.Positive(&c.Idle, 12*time.Hour)
	defaults.Positive(&c.Absolute, 7*24*time.Hour)
	return c
}

// CookieName is the session cookie's name: __Host- prefixed when Secure.
func (c SessionConfig) CookieName() string {
	if c.Secure {
		return "__Host-shopledger_session"
	}
	return "shopledger_session"
}

// SessionID is the secret a browser holds: 256 random bits. Only its hash
// is stored.
type SessionID string

func (id SessionID) hash() []byte { return hashSecret(string(id)) }

// ErrNoSession means the cookie names no live session.
var ErrNoSession = errors.New("no live session")

// Session is a logged-in browser.
type Session struct {
	ID   SessionID
	User User
	// OrgID is the organisation the session acts for, Role the user's
	// role in it; zero and "" when the user belongs to none.
	OrgID     int64
	OrgName   string
	Role      Role
	CreatedAt time.Time
}

// NewSession starts a session for a user who just proved who they are,
// acting for org (0: the user's oldest membership). A new id every time:
// an id planted in the browser before login is never promoted.
func (s *Store) NewSession(ctx context.Context, userID uuid.UUID, org int64, c Client) (SessionID, error) {
	secret, hash, err := newSecret()
	if err != nil {
		return "", err
	}
	if org == 0 {
		err := s.db.QueryRowContext(ctx, `SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id LIMIT 1`, userID).Scan(&org)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("new session: %w", err)
		}
	}
	now := s.now().UTC()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < $1 OR last_seen_at < $2`, now, now.Add(-s.sessions.Idle)); err != nil {
		return "", fmt.Errorf("purge sessions: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO sessions (id_hash, user_id, org_id, created_at, last_seen_at, expires_at, address, user_agent)
		VALUES ($1, $2, $3, $4, $4, $5, $6, $7)`, hash, userID, nullInt(org), now, now.Add(s.sessions.Absolute), c.Address, truncate(c.UserAgent, 300))
	if err != nil {
		return "", fmt.Errorf("new session: %w", err)
	}
	return SessionID(secret), nil
}

// Session returns the live session id names and marks it used. The role
// is read from the membership on every call, so a role change or a
// removal takes effect on the member's next request.
func (s *Store) Session(ctx context.Context, id SessionID) (Session, error) {
	if len(id) != 43 {
		return Session{}, ErrNoSession
	}
	now := s.now().UTC()
	var sess Session
	var userID uuid.UUID
	var org sql.NullInt64
	var orgName, role sql.NullString
	var lastSeen time.Time
	err := s.db.QueryRowContext(ctx, `SELECT s.user_id, s.created_at, s.last_seen_at, m.org_id, o.name, m.role
		FROM sessions s
		LEFT JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
		LEFT JOIN organisations o ON o.id = m.org_id
		WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3`,
		id.hash(), now, now.Add(-s.sessions.Idle)).Scan(&userID, &sess.CreatedAt, &lastSeen, &org, &orgName, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	// Writing last_seen_at at most once a minute keeps page views cheap.
	if now.Sub(lastSeen) > time.Minute {
		if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1`, id.hash(), now); err != nil {
			return Session{}, fmt.Errorf("session: %w", err)
		}
	}
	if sess.User, err = s.User(ctx, userID); err != nil {
		return Session{}, err
	}
	sess.ID, sess.OrgID, sess.OrgName, sess.Role = id, org.Int64, orgName.String, Role(role.String)
	return sess, nil
}

// Rotate replaces a session's id, keeping the user and organisation, and
// acting for org when it is not 0 (the caller has checked membership).
// The old id stops working at once.
func (s *Store) Rotate(ctx context.Context, id SessionID, org int64) (SessionID, error) {
	secret, hash, err := newSecret()
	if err != nil {
		return "", err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET id_hash = $2, org_id = CASE WHEN $3 = 0 THEN org_id ELSE $3 END WHERE id_hash = $1`, id.hash(), hash, org)
	if err != nil {
		return "", fmt.Errorf("rotate session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", ErrNoSession
	}
	return SessionID(secret), nil
}

// SwitchOrganisation makes a session act for another organisation of its
// user, under a new id (a change of privilege).
func (s *Store) SwitchOrganisation(ctx context.Context, sess Session, org int64) (SessionID, error) {
	if _, err := s.roleOf(ctx, s.db, org, sess.User.ID); err != nil {
		return "", err
	}
	return s.Rotate(ctx, sess.ID, org)
}

// Logout ends one session.
func (s *Store) Logout(ctx context.Context, sess Session, c Client) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = $1`, sess.ID.hash()); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return s.Record(ctx, nil, AuditEntry{ActorID: sess.User.ID, Actor: sess.User.Email, Action: ActionLogout, Address: c.Address, UserAgent: c.UserAgent})
}

// LogoutEverywhere ends every session of the user, this one included.
func (s *Store) LogoutEverywhere(ctx context.Context, sess Session, c Client) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1`, sess.User.ID)
	if err != nil {
		return fmt.Errorf("logout everywhere: %w", err)
	}
	n, _ := res.RowsAffected()
	return s.Record(ctx, nil, AuditEntry{ActorID: sess.User.ID, Actor: sess.User.Email, Action: ActionLogoutEverywhere,
		Address: c.Address, UserAgent: c.UserAgent, Detail: map[string]string{"sessions": fmt.Sprint(n)}})
}
