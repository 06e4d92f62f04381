package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// OperatorUser is what an operator gives to add a user (ledger accounts
// add-user): the operator vouches for the address, so the user starts
// verified.
type OperatorUser struct {
	Email       string
	Password    string
	DisplayName string
	Timezone    string
	OrgID       int64
	Role        Role
}

// ActionOperatorAddedUser records an operator adding a user or membership.
const ActionOperatorAddedUser = "operator.user_added"

// AddUser creates a verified user, or finds the one with that address
// (whose password then stays as it is), and makes them a member of the
// organisation with the role.
func (s *Store) AddUser(ctx context.Context, in OperatorUser) (User, bool, error) {
	email, key, err := normaliseEmail(in.Email)
	if err != nil {
		return User{}, false, err
	}
	if _, err := ParseRole(string(in.Role)); err != nil {
		return User{}, false, err
	}
	if in.Timezone == "" {
		in.Timezone = "UTC"
	}
	if err := checkTimezone(in.Timezone); err != nil {
		return User{}, false, err
	}
	name, err := checkDisplayName(in.DisplayName)
	if err != nil {
		return User{}, false, err
	}
	var id uuid.UUID
	created := false
	err = s.db.QueryRowContext(ctx, `SELECT id FROM users WHERE email_key = $1`, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		if err := CheckNewPassword(in.Password, email); err != nil {
			return User{}, false, err
		}
		hash, err := hashPassword(in.Password, s.argon)
		if err != nil {
			return User{}, false, err
		}
		if id, err = uuid.NewV7(); err != nil {
			return User{}, false, err
		}
		now := s.now().UTC()
		if _, err := s.db.ExecContext(ctx, `INSERT INTO users (id, email, email_key, password_hash, display_name, timezone, verified_at, created_at, password_changed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)`, id, email, key, hash, name, in.Timezone, now); err != nil {
			return User{}, false, fmt.Errorf("add user: %w", err)
		}
		created = true
	} else if err != nil {
		return User{}, false, fmt.Errorf("add user: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role`, in.OrgID, id, in.Role, s.now().UTC()); err != nil {
		return User{}, false, fmt.Errorf("add user: membership: %w", err)
	}
	if err := s.Record(ctx, nil, AuditEntry{OrgID: in.OrgID, ActorID: id, Actor: "operator", Action: ActionOperatorAddedUser, Target: email,
		Detail: map[string]string{"role": string(in.Role)}}); err != nil {
		return User{}, false, err
	}
	u, err := s.User(ctx, id)
	return u, created, err
}

// OrganisationOfSeller returns the organisation that stands for an Etsy
// seller, creating it on first use (as a token made by seller id does).
func (s *Store) OrganisationOfSeller(ctx context.Context, sellerID int64) (int64, error) {
	if sellerID <= 0 {
		return 0, fmt.Errorf("%w: seller id must be positive", ErrInvalid)
	}
	var org int64
	if err := s.db.QueryRowContext(ctx, `SELECT organisation_of_seller($1)`, sellerID).Scan(&org); err != nil {
		return 0, fmt.Errorf("organisation of seller %d: %w", sellerID, err)
	}
	return org, nil
}
