package accounts

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// User is a person who can log in.
type User struct {
	ID          uuid.UUID
	Email       string
	DisplayName string
	Timezone    string
	Verified    bool
	CreatedAt   time.Time
}

// Name is what pages call the user: the display name, else the address.
func (u User) Name() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Email
}

// Location is the user's time zone (UTC if it no longer loads).
func (u User) Location() *time.Location {
	if loc, err := time.LoadLocation(u.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// SignUp is what a new user gives.
type SignUp struct {
	Email       string
	Password    string
	DisplayName string
	Timezone    string
	// Organisation names the organisation the user will own; empty
	// derives one from the display name or address.
	Organisation string
}

const userColumns = `id, email, display_name, timezone, verified_at IS NOT NULL, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &u.Timezone, &u.Verified, &u.CreatedAt)
	u.CreatedAt = u.CreatedAt.UTC()
	return u, err
}

// User returns a user by id.
func (s *Store) User(ctx context.Context, id uuid.UUID) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// SignUp creates an unverified user owning a new organisation and sends
// the verification e-mail. When the address is taken, nothing is created
// and its owner is told by e-mail instead: the caller's answer is the same
// either way, so sign-up reveals nothing about who is registered. Input
// errors (a bad address, a weak password) are returned.
func (s *Store) SignUp(ctx context.Context, in SignUp, c Client) error {
	email, key, err := normaliseEmail(in.Email)
	if err != nil {
		return err
	}
	if err := CheckNewPassword(in.Password, email); err != nil {
		return err
	}
	if in.Timezone == "" {
		in.Timezone = "UTC"
	}
	if err := checkTimezone(in.Timezone); err != nil {
		return err
	}
	name, err := checkDisplayName(in.DisplayName)
	if err != nil {
		return err
	}
	orgName := strings.TrimSpace(in.Organisation)
	if orgName == "" {
		orgName = cmp.Or(name, email) + "'s shops"
	}
	if len(orgName) > 100 {
		return fmt.Errorf("%w: organisation name is longer than 100 characters", ErrInvalid)
	}
	hash, err := hashPassword(in.Password, s.argon)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	taken := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (id, email, email_key, password_hash, display_name, timezone, created_at, password_changed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (email_key) DO NOTHING`, id, email, key, hash, name, in.Timezone, s.now().UTC())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			taken = true
			return err
		}
		org, err := s.createOrganisation(ctx, tx, orgName, id)
		if err != nil {
			return err
		}
		if err := s.Record(ctx, tx, AuditEntry{ActorID: id, Actor: email, Action: ActionSignUp, Address: c.Address, UserAgent: c.UserAgent}); err != nil {
			return err
		}
		return s.Record(ctx, tx, AuditEntry{OrgID: org, ActorID: id, Action: ActionOrgCreated, Target: orgName, Address: c.Address, UserAgent: c.UserAgent})
	})
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	if allowed, err := s.mailAllowed(ctx, key, c.Address); err != nil || !allowed {
		return err
	}
	if taken {
		s.sendMail(ctx, "signup_existing", Message{To: email, Subject: "Someone tried to sign up with your address",
			Body: "Someone (perhaps you) tried to create a shopledger account with this address, which already has one.\n\n" +
				"To log in: " + s.baseURL + "/login\nForgot your password? " + s.baseURL + "/password/forgot\n\n" +
				"If it was not you, you can ignore this message.\n"})
		return nil
	}
	return s.sendVerification(ctx, id, email)
}

func (s *Store) sendVerification(ctx context.Context, userID uuid.UUID, email string) error {
	token, err := s.newEmailToken(ctx, userID, "verify", "", s.ttl.verify)
	if err != nil {
		return err
	}
	s.sendMail(ctx, "verify", Message{To: email, Subject: "Verify your e-mail address for shopledger",
		Body: "Welcome to shopledger.\n\nOpen this link to verify your address (it works once, for " + s.ttl.verify.String() + "):\n\n" +
			s.link("/verify", token) + "\n\nIf you did not sign up, ignore this message.\n"})
	return nil
}

// ResendVerification sends a new verification link to an unverified
// address. It answers the same whether or not the address is registered.
func (s *Store) ResendVerification(ctx context.Context, email string, c Client) error {
	_, key, err := normaliseEmail(email)
	if err != nil {
		return err
	}
	var id uuid.UUID
	var addr string
	err = s.db.QueryRowContext(ctx, `SELECT id, email FROM users WHERE email_key = $1 AND verified_at IS NULL`, key).Scan(&id, &addr)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resend verification: %w", err)
	}
	if allowed, err := s.mailAllowed(ctx, key, c.Address); err != nil || !allowed {
		return err
	}
	return s.sendVerification(ctx, id, addr)
}

func (s *Store) link(path, token string) string {
	return s.baseURL + path + "?token=" + url.QueryEscape(token)
}

// newEmailToken stores a single-use link token and returns it.
func (s *Store) newEmailToken(ctx context.Context, userID uuid.UUID, purpose, newEmail string, ttl time.Duration) (string, error) {
	token, hash, err := newSecret()
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO email_tokens (token_hash, user_id, purpose, new_email, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, hash, userID, purpose, newEmail, now, now.Add(ttl)); err != nil {
		return "", fmt.Errorf("store %s link: %w", purpose, err)
	}
	return token, nil
}

// peekEmailToken returns the user and new address of a live token without
// using it.
func (s *Store) peekEmailToken(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, token, purpose string, lock bool) (uuid.UUID, string, error) {
	var userID uuid.UUID
	var newEmail string
	forUpdate := ""
	if lock {
		forUpdate = " FOR UPDATE"
	}
	err := q.QueryRowContext(ctx, `SELECT user_id, new_email FROM email_tokens
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3`+forUpdate,
		hashSecret(token), purpose, s.now().UTC()).Scan(&userID, &newEmail)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, "", ErrLinkInvalid
	}
	if err != nil {
		return uuid.Nil, "", fmt.Errorf("check link: %w", err)
	}
	return userID, newEmail, nil
}

// takeEmailToken is peekEmailToken that locks the token and uses it up in
// tx, so the link works once.
func (s *Store) takeEmailToken(ctx context.Context, tx *sql.Tx, token, purpose string) (uuid.UUID, string, error) {
	userID, newEmail, err := s.peekEmailToken(ctx, tx, token, purpose, true)
	if err != nil {
		return uuid.Nil, "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE email_tokens SET used_at = $2 WHERE token_hash = $1`, hashSecret(token), s.now().UTC()); err != nil {
		return uuid.Nil, "", err
	}
	return userID, newEmail, nil
}

// Verify marks the address of a verification link verified.
func (s *Store) Verify(ctx context.Context, token string, c Client) (User, error) {
	var u User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id, _, err := s.takeEmailToken(ctx, tx, token, "verify")
		if err != nil {
			return err
		}
		if u, err = scanUser(tx.QueryRowContext(ctx, `UPDATE users SET verified_at = coalesce(verified_at, $2) WHERE id = $1 RETURNING `+userColumns, id, s.now().UTC())); err != nil {
			return err
		}
		return s.Record(ctx, tx, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionEmailVerified, Address: c.Address, UserAgent: c.UserAgent})
	})
	if err != nil {
		return User{}, fmt.Errorf("verify e-mail: %w", err)
	}
	return u, nil
}

// Login checks an e-mail and password under the throttles. Every wrong
// combination answers ErrBadCredentials, after the same password-hashing
// work, whether the address is registered or not.
func (s *Store) Login(ctx context.Context, email, password string, c Client) (User, error) {
	email = strings.TrimSpace(email)
	key := strings.ToLower(email)
	keys := loginKeys(key, c.Address)
	wait, err := s.lockedFor(ctx, keys...)
	if err != nil {
		return User{}, err
	}
	var id uuid.UUID
	var hash string
	err = s.db.QueryRowContext(ctx, `SELECT id, password_hash FROM users WHERE email_key = $1`, key).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		hash = s.dummyHash
	} else if err != nil {
		return User{}, fmt.Errorf("login: %w", err)
	}
	if err := throttled(wait); err != nil {
		_ = s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: truncate(email, 254), Action: ActionLoginThrottled, Address: c.Address, UserAgent: c.UserAgent})
		return User{}, err
	}
	ok, stale, err := checkPassword(password, hash, s.argon)
	if err != nil {
		return User{}, fmt.Errorf("login: %w", err)
	}
	if !ok || id == uuid.Nil || len(password) > MaxPasswordLen {
		if err := s.loginFailed(ctx, keys...); err != nil {
			return User{}, err
		}
		_ = s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: truncate(email, 254), Action: ActionLoginFailed, Address: c.Address, UserAgent: c.UserAgent})
		return User{}, ErrBadCredentials
	}
	if err := s.clearThrottle(ctx, keys[0]); err != nil {
		return User{}, err
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	if !u.Verified {
		return User{}, ErrNotVerified
	}
	if stale {
		if h, err := hashPassword(password, s.argon); err == nil {
			_, _ = s.db.ExecContext(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, h)
		}
	}
	if err := s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionLoginSucceeded, Address: c.Address, UserAgent: c.UserAgent}); err != nil {
		return User{}, err
	}
	return u, nil
}

// RequestReset e-mails a password reset link if the address is
// registered. The answer is the same either way.
func (s *Store) RequestReset(ctx context.Context, email string, c Client) error {
	_, key, err := normaliseEmail(email)
	if err != nil {
		return err
	}
	var id uuid.UUID
	var addr string
	err = s.db.QueryRowContext(ctx, `SELECT id, email FROM users WHERE email_key = $1`, key).Scan(&id, &addr)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if allowed, err := s.mailAllowed(ctx, key, c.Address); err != nil || !allowed {
		return err
	}
	token, err := s.newEmailToken(ctx, id, "reset", "", s.ttl.reset)
	if err != nil {
		return err
	}
	if err := s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: addr, Action: ActionResetRequested, Address: c.Address, UserAgent: c.UserAgent}); err != nil {
		return err
	}
	s.sendMail(ctx, "reset", Message{To: addr, Subject: "Reset your shopledger password",
		Body: "Someone (perhaps you) asked to reset the password of this shopledger account.\n\nOpen this link to choose a new one (it works once, for " +
			s.ttl.reset.String() + "):\n\n" + s.link("/password/reset", token) + "\n\nIf it was not you, ignore this message: your password stays as it is.\n"})
	return nil
}

// CheckResetLink reports whether a reset link is live, without using it.
func (s *Store) CheckResetLink(ctx context.Context, token string) error {
	_, _, err := s.peekEmailToken(ctx, s.db, token, "reset", false)
	return err
}

// ResetPassword sets a new password through a reset link, which then stops
// working. Every session of the user ends and the login lock is lifted. A
// refused password leaves the link usable.
func (s *Store) ResetPassword(ctx context.Context, token, password string, c Client) (User, error) {
	id, _, err := s.peekEmailToken(ctx, s.db, token, "reset", false)
	if err != nil {
		return User{}, err
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	if err := CheckNewPassword(password, u.Email); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(password, s.argon)
	if err != nil {
		return User{}, err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, _, err := s.takeEmailToken(ctx, tx, token, "reset"); err != nil {
			return err
		}
		// Having the e-mail proves the address, so a reset verifies it too.
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $2, password_changed_at = $3, verified_at = coalesce(verified_at, $3) WHERE id = $1`,
			id, hash, s.now().UTC()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1`, id); err != nil {
			return err
		}
		return s.Record(ctx, tx, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionPasswordReset, Address: c.Address, UserAgent: c.UserAgent})
	})
	if err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	u.Verified = true
	return u, s.clearThrottle(ctx, "login-account:"+strings.ToLower(u.Email))
}

// checkCurrentPassword confirms the user knows their password before a
// sensitive change.
func (s *Store) checkCurrentPassword(ctx context.Context, id uuid.UUID, password string) error {
	var hash string
	if err := s.db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = $1`, id).Scan(&hash); err != nil {
		return fmt.Errorf("check password: %w", err)
	}
	ok, _, err := checkPassword(password, hash, s.argon)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the current password is wrong", ErrInvalid)
	}
	return nil
}

// ChangePassword sets a new password after checking the current one, and
// ends every session of the user but keep (the caller's, which the caller
// rotates).
func (s *Store) ChangePassword(ctx context.Context, id uuid.UUID, current, password string, keep SessionID, c Client) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.checkCurrentPassword(ctx, id, current); err != nil {
		return err
	}
	if err := CheckNewPassword(password, u.Email); err != nil {
		return err
	}
	hash, err := hashPassword(password, s.argon)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1`, id, hash, s.now().UTC()); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2`, id, keep.hash()); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		return s.Record(ctx, tx, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionPasswordChanged, Address: c.Address, UserAgent: c.UserAgent})
	})
}

// RequestEmailChange sends a confirmation link to the new address after
// checking the password; the address changes only when the link is used.
// The old address is told. When the new address is taken the link is not
// sent, and its owner is told instead, so the answer reveals nothing.
func (s *Store) RequestEmailChange(ctx context.Context, id uuid.UUID, password, newEmail string, c Client) error {
	email, key, err := normaliseEmail(newEmail)
	if err != nil {
		return err
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.checkCurrentPassword(ctx, id, password); err != nil {
		return err
	}
	if allowed, err := s.mailAllowed(ctx, key, c.Address); err != nil || !allowed {
		return err
	}
	var taken bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email_key = $1)`, key).Scan(&taken); err != nil {
		return fmt.Errorf("change e-mail: %w", err)
	}
	if err := s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionEmailChangeAsked, Target: email, Address: c.Address, UserAgent: c.UserAgent}); err != nil {
		return err
	}
	if taken {
		s.sendMail(ctx, "change_email_existing", Message{To: email, Subject: "Your address was offered for another shopledger account",
			Body: "Someone asked to move another shopledger account to this address, which already has an account. Nothing was changed.\n"})
		return nil
	}
	token, err := s.newEmailToken(ctx, id, "change_email", email, s.ttl.verify)
	if err != nil {
		return err
	}
	s.sendMail(ctx, "change_email", Message{To: email, Subject: "Confirm your new shopledger address",
		Body: "Open this link to make this your shopledger login address (it works once):\n\n" + s.link("/account/email/confirm", token) + "\n"})
	s.sendMail(ctx, "change_email_notice", Message{To: u.Email, Subject: "Your shopledger address is about to change",
		Body: "Someone logged in to your account asked to change its address to " + email + ".\nIf it was not you, change your password now: " + s.baseURL + "/account\n"})
	return nil
}

// ConfirmEmailChange moves the account to the address the link was sent
// to, which proves the user reads it.
func (s *Store) ConfirmEmailChange(ctx context.Context, token string, c Client) (User, error) {
	var u User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id, email, err := s.takeEmailToken(ctx, tx, token, "change_email")
		if err != nil {
			return err
		}
		old, err := s.User(ctx, id)
		if err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `UPDATE users SET email = $2, email_key = lower($2), verified_at = coalesce(verified_at, $3) WHERE id = $1 RETURNING `+userColumns,
			id, email, s.now().UTC()))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: %s has an account already", ErrInvalid, email)
		}
		if err != nil {
			return err
		}
		return s.Record(ctx, tx, AuditEntry{ActorID: id, Actor: old.Email, Action: ActionEmailChanged, Target: email, Address: c.Address, UserAgent: c.UserAgent})
	})
	if err != nil {
		return User{}, fmt.Errorf("confirm e-mail change: %w", err)
	}
	return u, nil
}

// UpdateProfile sets the display name and time zone.
func (s *Store) UpdateProfile(ctx context.Context, id uuid.UUID, displayName, timezone string, c Client) (User, error) {
	name, err := checkDisplayName(displayName)
	if err != nil {
		return User{}, err
	}
	if err := checkTimezone(timezone); err != nil {
		return User{}, err
	}
	u, err := scanUser(s.db.QueryRowContext(ctx, `UPDATE users SET display_name = $2, timezone = $3 WHERE id = $1 RETURNING `+userColumns, id, name, timezone))
	if err != nil {
		return User{}, fmt.Errorf("update profile: %w", err)
	}
	return u, s.Record(ctx, nil, AuditEntry{ActorID: id, Actor: u.Email, Action: ActionProfileChanged, Address: c.Address, UserAgent: c.UserAgent})
}

func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}
