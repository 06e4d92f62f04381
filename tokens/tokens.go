// Package tokens issues, lists, revokes and authenticates API tokens, and
// says what a token's holder (a Principal) may see. The ledger CLI creates
// tokens; the API authenticates them.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Role says which endpoints a token may use.
type Role string

const (
	// RoleSeller reads its seller's shops and sets thresholds.
	RoleSeller Role = "seller"
	// RoleAuditor reads the same shops and, in addition, their event log.
	RoleAuditor Role = "auditor"
)

// ParseRole accepts "seller" or "auditor".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleSeller, RoleAuditor:
		return Role(s), nil
	}
	return "", fmt.Errorf("role %q: want seller or auditor", s)
}

// Principal is who is asking and what they may see.
type Principal struct {
	TokenID uuid.UUID
	OrgID   int64
	Role    Role
	// Shops are the shop ids the request may see: the organisation's shops,
	// narrowed to the token's shop scope when it has one. Every reader
	// filters by this set; nothing outside it is ever read.
	Shops []int64
}

// Owns reports whether shopID is visible to the principal.
func (p Principal) Owns(shopID int64) bool { return slices.Contains(p.Shops, shopID) }

// Actor names the principal in events it causes.
func (p Principal) Actor() string { return "token:" + p.TokenID.String() }

// tokenPrefix marks shopledger tokens so that secret scanners and people
// recognise them.
const tokenPrefix = "slt_"

// shownPrefixLen is how much of a token a listing shows: the fixed prefix
// and 6 characters of the random part, too few to guess the rest.
const shownPrefixLen = len(tokenPrefix) + 6

// Token is an API token as stored: never the secret itself.
type Token struct {
	ID     uuid.UUID
	Prefix string
	// OrgID is the organisation whose shops the token reads. SellerID is
	// the Etsy user id an operator made it for (0 for a member's token),
	// and UserID the member who made it (uuid.Nil for an operator's): a
	// member's token works only while they are a member whose role allows
	// the token's.
	OrgID     int64
	SellerID  int64
	UserID    uuid.UUID
	Role      Role
	ShopIDs   []int64 // empty: all of the seller's shops
	Label     string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// NewToken is what Create needs: an organisation, or the Etsy seller
// whose organisation it is (made on first use).
type NewToken struct {
	OrgID    int64
	SellerID int64
	UserID   uuid.UUID
	Role     Role
	ShopIDs  []int64
	Label    string
	// TTL limits the token's life; zero means it does not expire.
	TTL time.Duration
}

// ErrNotFound is Revoke's answer for an id that names no token.
var ErrNotFound = errors.New("token not found")

// ErrBadToken covers unknown, revoked, expired and malformed tokens alike:
// the client learns only that it is not authenticated.
var ErrBadToken = errors.New("bad token")

// Store keeps API tokens in api_tokens, hashed with SHA-256. Tokens
// carry 256 random bits, so a fast unsalted hash is enough: there is no
// dictionary to attack, and lookups stay one indexed query.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// NewStore returns a store over db.
func NewStore(db *sql.DB) *Store {
	return &Store{db: db, now: time.Now}
}

func hashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Create stores a new token and returns its secret. The secret exists only
// in this return value.
func (s *Store) Create(ctx context.Context, nt NewToken) (string, Token, error) {
	if nt.SellerID < 0 || nt.OrgID < 0 || (nt.SellerID == 0 && nt.OrgID == 0) {
		return "", Token{}, fmt.Errorf("create token: an organisation or a positive seller id is required")
	}
	if _, err := ParseRole(string(nt.Role)); err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	for _, id := range nt.ShopIDs {
		if id <= 0 {
			return "", Token{}, fmt.Errorf("create token: shop id %d must be positive", id)
		}
	}
	if nt.TTL < 0 {
		return "", Token{}, fmt.Errorf("create token: ttl must not be negative")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, fmt.Errorf("create token: random: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	id, err := uuid.NewV7()
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: id: %w", err)
	}
	t := Token{
		ID:       id,
		Prefix:   secret[:shownPrefixLen],
		OrgID:    nt.OrgID,
		SellerID: nt.SellerID,
		UserID:   nt.UserID,
		Role:     nt.Role,
		ShopIDs:  append([]int64{}, nt.ShopIDs...),
		Label:    nt.Label,
	}
	var expires sql.NullTime
	if nt.TTL > 0 {
		expires = sql.NullTime{Time: s.now().Add(nt.TTL).UTC(), Valid: true}
	}
	// A token made by seller id joins that seller's organisation (a
	// trigger finds or makes it).
	err = s.db.QueryRowContext(ctx, `INSERT INTO api_tokens (id, token_hash, prefix, seller_id, role, shop_ids, label, expires_at, org_id, user_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING created_at, expires_at, org_id`,
		t.ID, hashToken(secret), t.Prefix, sql.NullInt64{Int64: t.SellerID, Valid: t.SellerID > 0}, string(t.Role), t.ShopIDs, t.Label, expires,
		sql.NullInt64{Int64: t.OrgID, Valid: t.OrgID > 0}, uuid.NullUUID{UUID: t.UserID, Valid: t.UserID != uuid.Nil}).Scan(&t.CreatedAt, &expires, &t.OrgID)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if expires.Valid {
		e := expires.Time.UTC()
		t.ExpiresAt = &e
	}
	return secret, t, nil
}

// Revoke marks a token revoked; requests with it fail from then on. Revoking
// a revoked token keeps its first revocation time.
func (s *Store) Revoke(ctx context.Context, id uuid.UUID) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	return nil
}

// List returns the tokens of a seller, or of every seller when sellerID is
// zero, oldest first.
func (s *Store) List(ctx context.Context, sellerID int64) ([]Token, error) {
	return s.list(ctx, `WHERE $1 = 0 OR seller_id = $1`, sellerID)
}

// ListOrganisation returns an organisation's tokens, oldest first.
func (s *Store) ListOrganisation(ctx context.Context, orgID int64) ([]Token, error) {
	return s.list(ctx, `WHERE org_id = $1`, orgID)
}

func (s *Store) list(ctx context.Context, where string, arg int64) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens `+where+` ORDER BY created_at, id`, arg)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeInOrganisation revokes a token of the organisation; a token of
// another organisation is ErrNotFound, as if it did not exist.
func (s *Store) RevokeInOrganisation(ctx context.Context, orgID int64, id uuid.UUID) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND org_id = $2
		RETURNING `+tokenColumns, id, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return t, nil
}

// Authenticate returns the live token whose secret this is. Unknown,
// revoked, expired and malformed secrets all fail with ErrBadToken,
// and so does a member's token once they left the organisation or their
// role no longer allows the token's.
func (s *Store) Authenticate(ctx context.Context, secret string) (Token, error) {
	t, _, err := s.authenticate(ctx, secret)
	return t, err
}

// ResolvePrincipal authenticates secret as Authenticate does and returns
// who is asking: the token's organisation and role, and the shops it may
// see, its organisation's (the database's organisation_shop_ids, the one
// tenancy rule) narrowed to the token's own shops when it names some.
// Token and shops come from one query: the API resolves one per request.
func (s *Store) ResolvePrincipal(ctx context.Context, secret string) (Principal, error) {
	t, shops, err := s.authenticate(ctx, secret)
	if err != nil {
		return Principal{}, err
	}
	if len(t.ShopIDs) > 0 {
		shops = slices.DeleteFunc(shops, func(id int64) bool { return !slices.Contains(t.ShopIDs, id) })
	}
	return Principal{TokenID: t.ID, OrgID: t.OrgID, Role: t.Role, Shops: shops}, nil
}

// authenticate reads the live token of secret and the shops its
// organisation owns (never nil).
func (s *Store) authenticate(ctx context.Context, secret string) (Token, []int64, error) {
	if !wellFormed(secret) {
		return Token{}, nil, ErrBadToken
	}
	var rawShops []byte
	row := s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+`, to_json(organisation_shop_ids(t.org_id)) FROM api_tokens t WHERE token_hash = $1
		AND (user_id IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = t.org_id AND m.user_id = t.user_id
			AND (m.role = 'owner' OR (m.role = 'staff' AND t.role = 'seller') OR (m.role = 'auditor' AND t.role = 'auditor'))))`, hashToken(secret))
	t, err := scanToken(scanAlso{row, &rawShops})
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, nil, ErrBadToken
	}
	if err != nil {
		return Token{}, nil, fmt.Errorf("authenticate: %w", err)
	}
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !s.now().Before(*t.ExpiresAt)) {
		return Token{}, nil, ErrBadToken
	}
	shops := []int64{}
	if err := json.Unmarshal(rawShops, &shops); err != nil {
		return Token{}, nil, fmt.Errorf("authenticate: shops of organisation %d: %w", t.OrgID, err)
	}
	return t, shops, nil
}

// scanAlso scans a row into scanToken's columns and then into more.
type scanAlso struct {
	row  interface{ Scan(...any) error }
	more any
}

func (s scanAlso) Scan(dest ...any) error { return s.row.Scan(append(dest, s.more)...) }

// wellFormed rejects anything that cannot be one of our tokens (a JWT, an
// empty string, a token of another system) before touching the database.
func wellFormed(secret string) bool {
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

const tokenColumns = `id, prefix, org_id, coalesce(seller_id, 0), user_id, role, to_json(shop_ids), label, created_at, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var role string
	var expires, revoked sql.NullTime
	var shops []byte
	var user uuid.NullUUID
	if err := row.Scan(&t.ID, &t.Prefix, &t.OrgID, &t.SellerID, &user, &role, &shops, &t.Label, &t.CreatedAt, &expires, &revoked); err != nil {
		return t, err
	}
	t.UserID = user.UUID
	t.Role = Role(role)
	if err := json.Unmarshal(shops, &t.ShopIDs); err != nil {
		return t, fmt.Errorf("token %s shop ids: %w", t.ID, err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if expires.Valid {
		e := expires.Time.UTC()
		t.ExpiresAt = &e
	}
	if revoked.Valid {
		r := revoked.Time.UTC()
		t.RevokedAt = &r
	}
	return t, nil
}
