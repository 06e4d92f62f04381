package accounts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Role is what a member may do in an organisation.
type Role string

const (
	// RoleOwner does everything: members, shops, tokens, channels, the
	// audit trail.
	RoleOwner Role = "owner"
	// RoleStaff reads and sets thresholds and stock.
	RoleStaff Role = "staff"
	// RoleAuditor reads, including the event log, export and
	// verification; writes nothing.
	RoleAuditor Role = "auditor"
)

// ParseRole accepts owner, staff or auditor.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleOwner, RoleStaff, RoleAuditor:
		return r, nil
	}
	return "", fmt.Errorf("%w: role %q: want owner, staff or auditor", ErrInvalid, s)
}

// Roles lists the roles, most powerful first.
func Roles() []Role { return []Role{RoleOwner, RoleStaff, RoleAuditor} }

// Manages reports whether the role may manage members, shops, tokens of
// others, alert channels and read the audit trail.
func (r Role) Manages() bool { return r == RoleOwner }

// Writes reports whether the role may change thresholds and stock.
func (r Role) Writes() bool { return r == RoleOwner || r == RoleStaff }

// ReadsLog reports whether the role may read the event log.
func (r Role) ReadsLog() bool { return r == RoleOwner || r == RoleAuditor }

// Actor is who acts, for whom and from where.
type Actor struct {
	UserID uuid.UUID
	Email  string
	OrgID  int64
	Role   Role
	Client Client
}

// Actor is the session's user acting for its organisation.
func (s Session) Actor(c Client) Actor {
	return Actor{UserID: s.User.ID, Email: s.User.Email, OrgID: s.OrgID, Role: s.Role, Client: c}
}

func (a Actor) audit(action, target string, detail map[string]string) AuditEntry {
	return AuditEntry{OrgID: a.OrgID, ActorID: a.UserID, Actor: a.Email, Action: action, Target: target,
		Address: a.Client.Address, UserAgent: a.Client.UserAgent, Detail: detail}
}

func (a Actor) mustManage() error {
	if a.OrgID == 0 || !a.Role.Manages() {
		return ErrForbidden
	}
	return nil
}

// Organisation is one a user belongs to.
type Organisation struct {
	ID   int64
	Name string
	Role Role // the user's
}

func (s *Store) createOrganisation(ctx context.Context, tx *sql.Tx, name string, owner uuid.UUID) (int64, error) {
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO organisations (name, created_at) VALUES ($1, $2) RETURNING id`, name, s.now().UTC()).Scan(&id); err != nil {
		return 0, fmt.Errorf("create organisation: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)`, id, owner, s.now().UTC()); err != nil {
		return 0, fmt.Errorf("create organisation: %w", err)
	}
	return id, nil
}

// Organisations lists the user's organisations.
func (s *Store) Organisations(ctx context.Context, userID uuid.UUID) ([]Organisation, error) {
	return queryAll(ctx, s.db, "organisations", func(rows *sql.Rows) (Organisation, error) {
		var o Organisation
		err := rows.Scan(&o.ID, &o.Name, &o.Role)
		return o, err
	}, `SELECT o.id, o.name, m.role FROM memberships m JOIN organisations o ON o.id = m.org_id
		WHERE m.user_id = $1 ORDER BY m.created_at, o.id`, userID)
}

func (s *Store) roleOf(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, org int64, user uuid.UUID) (Role, error) {
	var r Role
	err := q.QueryRowContext(ctx, `SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, org, user).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return r, err
}

// Member is a user in an organisation.
type Member struct {
	User     User
	Role     Role
	JoinedAt time.Time
}

// Members lists the actor's organisation's members.
func (s *Store) Members(ctx context.Context, a Actor) ([]Member, error) {
	if a.OrgID == 0 {
		return nil, ErrForbidden
	}
	return queryAll(ctx, s.db, "members", func(rows *sql.Rows) (Member, error) {
		var m Member
		err := rows.Scan(&m.User.ID, &m.User.Email, &m.User.DisplayName, &m.User.Timezone, &m.User.Verified, &m.User.CreatedAt, &m.Role, &m.JoinedAt)
		return m, err
	}, `SELECT u.id, u.email, u.display_name, u.timezone, u.verified_at IS NOT NULL, u.created_at, m.role, m.created_at
		FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY m.created_at, u.email_key`, a.OrgID)
}

// Invitation is an offer to join an organisation.
type Invitation struct {
	ID         uuid.UUID
	OrgID      int64
	OrgName    string
	Email      string
	Role       Role
	InvitedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	RevokedAt  *time.Time
}

// Open reports whether the invitation can still be accepted.
func (i Invitation) Open(now time.Time) bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && now.Before(i.ExpiresAt)
}

// Invite e-mails an invitation to join the actor's organisation. Owners
// only.
func (s *Store) Invite(ctx context.Context, a Actor, email string, role Role) (Invitation, error) {
	if err := a.mustManage(); err != nil {
		return Invitation{}, err
	}
	email, key, err := normaliseEmail(email)
	if err != nil {
		return Invitation{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Invitation{}, err
	}
	var member bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND u.email_key = $2)`,
		a.OrgID, key).Scan(&member); err != nil {
		return Invitation{}, fmt.Errorf("invite: %w", err)
	}
	if member {
		return Invitation{}, fmt.Errorf("%w: %s is a member already", ErrInvalid, email)
	}
	if allowed, err := s.mailAllowed(ctx, key, a.Client.Address); err != nil {
		return Invitation{}, err
	} else if !allowed {
		return Invitation{}, &ThrottledError{RetryAfter: s.throttle.MailWindow}
	}
	token, hash, err := newSecret()
	if err != nil {
		return Invitation{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Invitation{}, err
	}
	now := s.now().UTC()
	inv := Invitation{ID: id, OrgID: a.OrgID, Email: email, Role: role, InvitedBy: a.Email, CreatedAt: now, ExpiresAt: now.Add(s.ttl.invite)}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT name FROM organisations WHERE id = $1`, a.OrgID).Scan(&inv.OrgName); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, a.OrgID, email, role, hash, a.UserID, now, inv.ExpiresAt); err != nil {
			return err
		}
		return s.Record(ctx, tx, a.audit(ActionInvited, email, map[string]string{"role": string(role), "invitation": id.String()}))
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("invite: %w", err)
	}
	s.sendMail(ctx, "invitation", Message{To: email, Subject: "You are invited to " + inv.OrgName + " on shopledger",
		Body: a.Email + " invites you to join " + inv.OrgName + " on shopledger as " + string(role) + ".\n\n" +
			"Open this link to accept (it works once, until " + inv.ExpiresAt.Format("2 Jan 2006 15:04 MST") + "):\n\n" +
			s.link("/invitations/accept", token) + "\n\nIf you do not know them, ignore this message.\n"})
	return inv, nil
}

const invitationColumns = `i.id, i.org_id, o.name, i.email, i.role, coalesce(u.email, ''), i.created_at, i.expires_at, i.accepted_at, i.revoked_at`

const invitationFrom = ` FROM invitations i JOIN organisations o ON o.id = i.org_id LEFT JOIN users u ON u.id = i.invited_by `

func scanInvitation(row interface{ Scan(...any) error }) (Invitation, error) {
	var i Invitation
	var acc, rev sql.NullTime
	err := row.Scan(&i.ID, &i.OrgID, &i.OrgName, &i.Email, &i.Role, &i.InvitedBy, &i.CreatedAt, &i.ExpiresAt, &acc, &rev)
	if acc.Valid {
		t := acc.Time.UTC()
		i.AcceptedAt = &t
	}
	if rev.Valid {
		t := rev.Time.UTC()
		i.RevokedAt = &t
	}
	return i, err
}

// Invitations lists the actor's organisation's invitations, newest first.
func (s *Store) Invitations(ctx context.Context, a Actor) ([]Invitation, error) {
	if err := a.mustManage(); err != nil {
		return nil, err
	}
	return queryAll(ctx, s.db, "invitations", func(rows *sql.Rows) (Invitation, error) { return scanInvitation(rows) },
		`SELECT `+invitationColumns+invitationFrom+` WHERE i.org_id = $1 ORDER BY i.created_at DESC LIMIT 200`, a.OrgID)
}

// RevokeInvitation withdraws an open invitation of the actor's
// organisation; another organisation's invitation is ErrNotFound.
func (s *Store) RevokeInvitation(ctx context.Context, a Actor, id uuid.UUID) error {
	if err := a.mustManage(); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var email string
		err := tx.QueryRowContext(ctx, `UPDATE invitations SET revoked_at = $3 WHERE id = $1 AND org_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING email`,
			id, a.OrgID, s.now().UTC()).Scan(&email)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke invitation: %w", err)
		}
		return s.Record(ctx, tx, a.audit(ActionInvitationRevoked, email, map[string]string{"invitation": id.String()}))
	})
}

// InvitationByToken shows what a link offers, without accepting it.
func (s *Store) InvitationByToken(ctx context.Context, token string) (Invitation, error) {
	i, err := scanInvitation(s.db.QueryRowContext(ctx, `SELECT `+invitationColumns+invitationFrom+` WHERE i.token_hash = $1`, hashSecret(token)))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !i.Open(s.now())) {
		return Invitation{}, ErrLinkInvalid
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("invitation: %w", err)
	}
	return i, nil
}

// AcceptInvitation makes the logged-in user a member. The link works once
// and only for the address it was sent to (the user's verified login).
func (s *Store) AcceptInvitation(ctx context.Context, token string, u User, c Client) (Invitation, error) {
	if !u.Verified {
		return Invitation{}, ErrNotVerified
	}
	var inv Invitation
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invitationColumns+invitationFrom+` WHERE i.token_hash = $1 FOR UPDATE OF i`, hashSecret(token)))
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !inv.Open(s.now())) {
			return ErrLinkInvalid
		}
		if err != nil {
			return err
		}
		if !strings.EqualFold(inv.Email, u.Email) {
			return fmt.Errorf("%w: this invitation is for %s; log in with that address", ErrForbidden, inv.Email)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_at = $2, accepted_by = $3 WHERE id = $1`, inv.ID, s.now().UTC(), u.ID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			inv.OrgID, u.ID, inv.Role, s.now().UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: you are a member of %s already", ErrInvalid, inv.OrgName)
		}
		a := Actor{UserID: u.ID, Email: u.Email, OrgID: inv.OrgID, Role: inv.Role, Client: c}
		return s.Record(ctx, tx, a.audit(ActionInvitationAccepted, u.Email, map[string]string{"role": string(inv.Role), "invitation": inv.ID.String()}))
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("accept invitation: %w", err)
	}
	return inv, nil
}

// lockOwners locks the organisation's memberships and counts its owners,
// so two concurrent demotions cannot both leave the last owner out.
func lockOwners(ctx context.Context, tx *sql.Tx, org int64) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT role FROM memberships WHERE org_id = $1 FOR UPDATE`, org)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	owners := 0
	for rows.Next() {
		var r Role
		if err := rows.Scan(&r); err != nil {
			return 0, err
		}
		if r == RoleOwner {
			owners++
		}
	}
	return owners, rows.Err()
}

// ChangeRole sets a member's role. Owners only; the last owner keeps the
// role. The member's next request runs with the new role.
func (s *Store) ChangeRole(ctx context.Context, a Actor, member uuid.UUID, role Role) error {
	if err := a.mustManage(); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		owners, err := lockOwners(ctx, tx, a.OrgID)
		if err != nil {
			return fmt.Errorf("change role: %w", err)
		}
		old, err := s.roleOf(ctx, tx, a.OrgID, member)
		if err != nil {
			return err
		}
		if old == RoleOwner && role != RoleOwner && owners == 1 {
			return ErrLastOwner
		}
		if _, err := tx.ExecContext(ctx, `UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2`, a.OrgID, member, role); err != nil {
			return fmt.Errorf("change role: %w", err)
		}
		// Tokens above the new role stop working at once (authentication
		// checks them too); revoking them says so in the listing.
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $4 WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL AND NOT `+tokenWithinRole,
			a.OrgID, member, role, s.now().UTC()); err != nil {
			return fmt.Errorf("change role: %w", err)
		}
		return s.Record(ctx, tx, a.audit(ActionRoleChanged, member.String(), map[string]string{"from": string(old), "to": string(role)}))
	})
}

// tokenWithinRole is true for an api_tokens row whose API role a member
// of role $3 may hold: owners any, staff seller tokens, auditors auditor
// tokens.
const tokenWithinRole = `($3 = 'owner' OR ($3 = 'staff' AND role = 'seller') OR ($3 = 'auditor' AND role = 'auditor'))`

// RemoveMember takes a member out of the actor's organisation (owners
// only), or the actor out of it (anyone may leave). The last owner can do
// neither. Their sessions lose the organisation and their tokens for it
// are revoked: both stop working on the next request.
func (s *Store) RemoveMember(ctx context.Context, a Actor, member uuid.UUID) error {
	leaving := member == a.UserID
	if !leaving {
		if err := a.mustManage(); err != nil {
			return err
		}
	} else if a.OrgID == 0 {
		return ErrForbidden
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		owners, err := lockOwners(ctx, tx, a.OrgID)
		if err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		role, err := s.roleOf(ctx, tx, a.OrgID, member)
		if err != nil {
			return err
		}
		if role == RoleOwner && owners == 1 {
			return ErrLastOwner
		}
		var email string
		if err := tx.QueryRowContext(ctx, `SELECT email FROM users WHERE id = $1`, member).Scan(&email); err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		now := s.now().UTC()
		for _, q := range []string{
			`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`,
			`UPDATE sessions SET org_id = NULL WHERE org_id = $1 AND user_id = $2`,
			`UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL`,
		} {
			args := []any{a.OrgID, member}
			if strings.Contains(q, "$3") {
				args = append(args, now)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("remove member: %w", err)
			}
		}
		action := ActionMemberRemoved
		if leaving {
			action = ActionMemberLeft
		}
		return s.Record(ctx, tx, a.audit(action, email, map[string]string{"role": string(role)}))
	})
}

// ShopIDs returns the shops an organisation owns: those it connected,
// and those of the Etsy seller it stands for that no other organisation
// connected (the database's organisation_shop_ids, the one tenancy rule).
func (s *Store) ShopIDs(ctx context.Context, org int64) ([]int64, error) {
	var raw []byte
	if err := s.db.QueryRowContext(ctx, `SELECT to_json(organisation_shop_ids($1))`, org).Scan(&raw); err != nil {
		return nil, fmt.Errorf("shops of organisation %d: %w", org, err)
	}
	ids := []int64{}
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("shops of organisation %d: %w", org, err)
	}
	return ids, nil
}
