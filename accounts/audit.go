package accounts

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Actions recorded in the security audit trail.
const (
	ActionSignUp             = "user.signed_up"
	ActionEmailVerified      = "user.email_verified"
	ActionLoginSucceeded     = "login.succeeded"
	ActionLoginFailed        = "login.failed"
	ActionLoginThrottled     = "login.throttled"
	ActionLogout             = "session.logged_out"
	ActionLogoutEverywhere   = "session.logged_out_everywhere"
	ActionResetRequested     = "password.reset_requested"
	ActionPasswordReset      = "password.reset"
	ActionPasswordChanged    = "password.changed"
	ActionEmailChangeAsked   = "email.change_requested"
	ActionEmailChanged       = "email.changed"
	ActionProfileChanged     = "user.profile_changed"
	ActionOrgCreated         = "organisation.created"
	ActionInvited            = "member.invited"
	ActionInvitationRevoked  = "member.invitation_revoked"
	ActionInvitationAccepted = "member.joined"
	ActionRoleChanged        = "member.role_changed"
	ActionMemberRemoved      = "member.removed"
	ActionMemberLeft         = "member.left"
	ActionTokenCreated       = "token.created"
	ActionTokenRevoked       = "token.revoked"
	ActionShopConnectStarted = "shop.connect_started"
	ActionShopConnected      = "shop.connected"
	ActionShopDisconnected   = "shop.disconnected"
	ActionShopSyncRequested  = "shop.sync_requested"
	ActionChannelAdded       = "alert_channel.added"
	ActionChannelRemoved     = "alert_channel.removed"
	ActionChannelTested      = "alert_channel.tested"
	ActionChannelRotated     = "alert_channel.secret_rotated"
)

// AuditEntry is one security-relevant action.
type AuditEntry struct {
	ID        int64
	At        time.Time
	OrgID     int64 // 0: not about one organisation (a login, say)
	ActorID   uuid.UUID
	Actor     string // the e-mail as typed, for attempts by no known user
	Action    string
	Target    string
	Address   string
	UserAgent string
	Detail    map[string]string
}

// Execer is a *sql.DB or a *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Record appends an entry to the trail. Within tx, it commits or rolls
// back with the action it records.
func (s *Store) Record(ctx context.Context, x Execer, e AuditEntry) error {
	if x == nil {
		x = s.db
	}
	return Record(ctx, x, s.now(), e)
}

// Record appends an entry to the trail through x, stamped at: for
// services that act on accounts without a Store (ingest's connect flow).
func Record(ctx context.Context, x Execer, at time.Time, e AuditEntry) error {
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	if e.Detail == nil {
		detail = []byte("{}")
	}
	_, err = x.ExecContext(ctx, `INSERT INTO security_audit (at, org_id, actor_id, actor, action, target, address, user_agent, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		at.UTC(), nullInt(e.OrgID), nullUUID(e.ActorID), e.Actor, e.Action, e.Target, e.Address, truncate(e.UserAgent, 300), detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditTrail returns an organisation's entries, newest first, before the
// id before (0: from the newest), at most limit; plus the entries of its
// members' own accounts (logins, password changes) while they are members.
func (s *Store) AuditTrail(ctx context.Context, orgID, before int64, limit int) ([]AuditEntry, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return queryAll(ctx, s.db, "audit trail", func(rows *sql.Rows) (AuditEntry, error) {
		var e AuditEntry
		var actor uuid.NullUUID
		var detail []byte
		if err := rows.Scan(&e.ID, &e.At, &e.OrgID, &actor, &e.Actor, &e.Action, &e.Target, &e.Address, &e.UserAgent, &detail); err != nil {
			return e, err
		}
		e.At = e.At.UTC()
		e.ActorID = actor.UUID
		if err := json.Unmarshal(detail, &e.Detail); err != nil {
			return e, fmt.Errorf("entry %d: %w", e.ID, err)
		}
		return e, nil
	}, `SELECT id, at, coalesce(org_id, 0), actor_id, actor, action, target, address, user_agent, detail
		FROM security_audit a
		WHERE ($2 = 0 OR id < $2)
		  AND (org_id = $1 OR (org_id IS NULL AND actor_id IN (SELECT user_id FROM memberships WHERE org_id = $1)))
		ORDER BY id DESC LIMIT $3`, orgID, before, limit)
}

// queryAll runs a query on db and scans every row with scan; errors start
// with op.
func queryAll[T any](ctx context.Context, db *sql.DB, op string, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func nullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }

func nullUUID(v uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: v, Valid: v != uuid.Nil} }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
