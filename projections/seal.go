package projections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/projections/engine"
)

// Seal gives every event a gap-free sequence number in commit order and
// chains it: hash = sha256(prev_hash || event_canonical(seq, event)), with
// an empty prev_hash for seq 1. Auditors page the log by seq and
// VerifySeal recomputes the chain. The seal is never rebuilt: it is
// evidence that the log has not changed since it was sealed.
type Seal struct{}

// NewSeal returns the sealing projection.
func NewSeal() *Seal { return &Seal{} }

// Name implements engine.Projection.
func (*Seal) Name() string { return "seal" }

// Handles implements engine.Projection: every event is sealed, even of a type
// this binary does not know.
func (*Seal) Handles(string) bool { return true }

// sealSQL chains the event at $1 onto the last sealed one, as
// seal_events does for a batch (migration 00203): the event's canonical
// text is computed by PostgreSQL from the stored row, so the hash covers
// exactly what the log holds, and an event that is not there stops it
// with an error instead of leaving a hole.
const sealSQL = `SELECT seal_events(ARRAY[$1::bigint])`

// Apply implements engine.Projection.
func (s *Seal) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return engine.ApplyPlan(ctx, s, tx, rec)
}

// Forget implements engine.Planner.
func (*Seal) Forget() {}

// Adopt implements engine.Planner.
func (*Seal) Adopt(*sql.Tx) {}

// Plan implements engine.Planner.
func (*Seal) Plan(_ context.Context, _ *sql.Tx, rec events.Record) ([]engine.Stmt, error) {
	return []engine.Stmt{{SQL: sealSQL, Args: []any{rec.Position}}}, nil
}

// sealBatchSQL seals a batch of events in order.
const sealBatchSQL = `SELECT seal_events($1::bigint[])`

// Compact turns a batch's per-event seal statements into one call of
// seal_events.
func (*Seal) Compact(stmts []engine.Stmt) ([]engine.Stmt, error) {
	positions := make([]int64, 0, len(stmts))
	for _, s := range stmts {
		positions = append(positions, s.Args[0].(int64))
	}
	if len(positions) == 0 {
		return nil, nil
	}
	return []engine.Stmt{{SQL: sealBatchSQL, Args: []any{positions}}}, nil
}

// Payloadless tells the runner that the seal needs only the event's place
// in the log, not its decoded payload.
func (*Seal) Payloadless() {}

// CountLag implements engine.LagCounter. The seal knows exactly what it
// has not covered: an event that landed behind its offset (a log moved
// without being adopted) counts as lag too, instead of hiding. Its seq is
// gap-free, so the last one is how many events it sealed.
func (*Seal) CountLag(ctx context.Context, q eventstore.Queryer) (int64, error) {
	return eventstore.CountPastSeal(ctx, q)
}

// Problems VerifySeal reports.
const (
	ProblemGap          = "gap"           // a seq number is missing
	ProblemLink         = "broken_link"   // prev_hash is not the previous hash
	ProblemHash         = "hash_mismatch" // the event no longer hashes to its seal
	ProblemMissingEvent = "missing_event" // a sealed event is gone from the log
	ProblemUnsealed     = "unsealed"      // an event appeared behind sealed ones
	// ProblemAnchor: the chain no longer passes through a signed head.
	ProblemAnchor = "anchor_mismatch"
	// ProblemAnchorSignature: a signed head's signature does not verify.
	ProblemAnchorSignature = "anchor_signature"
)

// Mismatch is the first place where the log and its seal disagree.
type Mismatch struct {
	Kind     string    `json:"kind"`
	Seq      int64     `json:"seq"`
	Position int64     `json:"position"`
	EventID  uuid.UUID `json:"event_id"`
	Detail   string    `json:"detail"`
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s at seq %d (position %d, event %s): %s", m.Kind, m.Seq, m.Position, m.EventID, m.Detail)
}

// VerifyReport is the result of VerifySeal.
type VerifyReport struct {
	// Sealed is how many seal rows were checked.
	Sealed int64 `json:"sealed"`
	// Head is the hash of the last seal row checked.
	Head string `json:"head"`
	// Pending counts events committed after the last sealed one, not yet
	// sealed: normal while the projector catches up.
	Pending int64 `json:"pending"`
	// Anchors is how many signed heads the chain passes through;
	// AnchorsVerified how many of their signatures were checked (all of
	// them when the seal keys were given); AnchoredSeq the last anchored
	// seq. Sealed events after it are chained but not yet signed.
	Anchors         int64 `json:"anchors"`
	AnchorsVerified int64 `json:"anchors_verified"`
	AnchoredSeq     int64 `json:"anchored_seq"`
	// First is the first disagreement, nil when the chain holds.
	First *Mismatch `json:"first_mismatch,omitempty"`
}

// OK reports whether the chain holds.
func (r VerifyReport) OK() bool { return r.First == nil }

// VerifySeal recomputes the chain from the log: every seq from 1 without
// gaps, each prev_hash equal to the hash before it, each hash equal to
// sha256(prev_hash || canonical event) recomputed here, no sealed event
// missing, and no unsealed event in the sealed range. It stops at the first
// mismatch. It reads in one snapshot so that a running sealer does not
// disturb it.
func VerifySeal(ctx context.Context, db *sql.DB) (VerifyReport, error) {
	return VerifySealWith(ctx, db, nil)
}

// VerifySealWith is VerifySeal that also checks the chain against its
// signed heads (seal_anchors): the recomputed hash at every anchored seq
// must equal the signed one and, when keys are given, every signature must
// verify. Without keys a superuser could rewrite anchors along with the
// log; with them, not.
func VerifySealWith(ctx context.Context, db *sql.DB, keys *SealKeys) (VerifyReport, error) {
	var rep VerifyReport
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("verify seal: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	anchors, lastAnchor, err := loadAnchors(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("verify seal: %w", err)
	}
	prev := []byte{}
	var want int64 = 1
	var lastPos int64
	err = eventstore.EachSealedRow(ctx, tx, func(row eventstore.SealedRow) bool {
		at := func(kind, detail string) {
			rep.First = &Mismatch{Kind: kind, Seq: row.Seq, Position: row.Position, EventID: row.EventID, Detail: detail}
		}
		switch {
		case row.Seq != want:
			at(ProblemGap, fmt.Sprintf("expected seq %d", want))
		case !bytes.Equal(row.PrevHash, prev):
			at(ProblemLink, fmt.Sprintf("prev_hash %x, previous hash %x", row.PrevHash, prev))
		case !row.Present:
			at(ProblemMissingEvent, "no event with this position and id")
		default:
			sum := sha256.Sum256(append(append([]byte{}, prev...), row.Canonical...))
			if !bytes.Equal(sum[:], row.Hash) {
				at(ProblemHash, fmt.Sprintf("stored %x, recomputed %x", row.Hash, sum[:]))
			} else if kind, detail := checkAnchor(anchors, keys, row.Seq, row.Hash, &rep); kind != "" {
				at(kind, detail)
			}
		}
		if rep.First != nil {
			return false
		}
		rep.Sealed++
		prev = row.Hash
		want++
		lastPos = row.Position
		return true
	})
	if err != nil {
		return rep, fmt.Errorf("verify seal: %w", err)
	}
	if rep.First != nil {
		return rep, nil
	}
	rep.Head = hex.EncodeToString(prev)
	if lastAnchor > rep.Sealed {
		rep.First = &Mismatch{Kind: ProblemAnchor, Seq: lastAnchor,
			Detail: fmt.Sprintf("a head was signed at seq %d but the seal ends at seq %d: sealed rows were removed", lastAnchor, rep.Sealed)}
		return rep, nil
	}

	// Events the sealer would have reached before the last sealed one but
	// that are not sealed were inserted behind its back.
	pos, id, found, err := eventstore.FirstUnsealedBehindHead(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("verify seal: unsealed events: %w", err)
	}
	if found {
		rep.First = &Mismatch{Kind: ProblemUnsealed, Position: pos, EventID: id,
			Detail: fmt.Sprintf("event at position %d precedes the seal head (position %d) but is not sealed", pos, lastPos)}
		return rep, nil
	}
	if rep.Pending, err = eventstore.CountAllUnsealed(ctx, tx); err != nil {
		return rep, fmt.Errorf("verify seal: pending events: %w", err)
	}
	return rep, nil
}

// Readers: the auditors' view of the sealed log. The log itself is read
// through the event store; what is kept here is what verifying the chain
// for each request has learnt.

// EventFilter selects sealed events. Shops is the caller's set and is
// always applied; the other fields narrow it.
type EventFilter = eventstore.SealedFilter

// ListEvents pages sealed events of the filter's shops by seq.
func (r *Reader) ListEvents(ctx context.Context, f EventFilter) ([]eventstore.LoggedEvent, error) {
	return r.log.ListSealed(ctx, f)
}

// GetEvent returns one event of shops, sealed or not yet.
func (r *Reader) GetEvent(ctx context.Context, shops []int64, id uuid.UUID) (eventstore.LoggedEvent, error) {
	ev, err := r.log.GetLogged(ctx, shops, id)
	if errors.Is(err, eventstore.ErrNoEvent) {
		return ev, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return ev, err
}

// Causation returns the events that led to id (oldest first) and the
// events it led to (in log order), both limited to shops.
func (r *Reader) Causation(ctx context.Context, shops []int64, id uuid.UUID) (causes, effects []eventstore.LoggedEvent, err error) {
	return r.log.Causation(ctx, shops, id)
}

// ChainStatus says how far the log is sealed and whether the caller's part
// of the chain verifies.
type ChainStatus struct {
	// SealedThrough is the highest sealed sequence number of the whole log.
	SealedThrough int64  `json:"sealed_through"`
	HeadHash      string `json:"head_hash"`
	// Unsealed counts the caller's events not yet sealed.
	Unsealed int64 `json:"unsealed"`
	// VerifiedThrough is how far along the whole seal the service has
	// recomputed the chain; below SealedThrough while it catches up (after
	// a restart, or behind a burst of sealing), a bounded step a request.
	VerifiedThrough int64 `json:"verified_through"`
	// Checked counts the caller's sealed events, up to VerifiedThrough,
	// whose link and hash were recomputed.
	Checked int64 `json:"checked"`
	// Valid says that every checked event verified.
	Valid bool `json:"valid"`
	// FirstMismatchSeq is the first sequence whose hash did not verify.
	FirstMismatchSeq *int64    `json:"first_mismatch_seq"`
	CheckedAt        time.Time `json:"checked_at"`
}

// Chain verification reads each sealed event once per process, not once
// per request. chainVerifier walks the whole seal in seq order: for each
// row, prev_hash must be the stored hash of the row before it (empty for
// seq 1; a missing row breaks the link) and hash must equal
// sha256(prev_hash || event_canonical(seq, event)), recomputed from the
// event as the log holds it (eventstore.WalkSeal). What it found is kept
// per shop, so a request reads its shops' counts instead of re-hashing
// their history; each request advances the walk by at most step rows, and
// re-checks the caller's newest window sealed events, so that a change to
// recent events shows at once. ledger verify re-hashes everything.
type chainVerifier struct {
	// walking is held by the one request advancing the walk; others
	// answer from what is known without waiting.
	walking sync.Mutex
	mu      sync.Mutex
	// through is the last seq walked and last its stored hash.
	through int64
	last    []byte
	checked map[int64]int64 // shop → sealed events walked
	first   map[int64]int64 // shop → first seq that did not verify
	step    int
	window  int
}

// Default bounds of a request's chain verification.
const (
	chainStep   = 20_000
	chainWindow = 1_000
)

func newChainVerifier(step, window int) *chainVerifier {
	defaults.Positive(&step, chainStep)
	defaults.Positive(&window, chainWindow)
	return &chainVerifier{last: []byte{}, checked: map[int64]int64{}, first: map[int64]int64{}, step: step, window: window}
}

// walk verifies up to step more seal rows after the last one walked.
func (v *chainVerifier) walk(ctx context.Context, log *eventstore.Store) error {
	if !v.walking.TryLock() {
		return nil
	}
	defer v.walking.Unlock()
	v.mu.Lock()
	through := v.through
	v.mu.Unlock()
	return log.WalkSeal(ctx, through, v.step, func(l eventstore.SealedLink) {
		v.mu.Lock()
		defer v.mu.Unlock()
		linkOK := l.Seq == v.through+1 && bytes.Equal(l.PrevHash, v.last)
		v.checked[l.ShopID]++
		if first, seen := v.first[l.ShopID]; !(l.HashOK && linkOK) && (!seen || l.Seq < first) {
			v.first[l.ShopID] = l.Seq
		}
		v.through, v.last = l.Seq, l.Hash
	})
}

// ChainStatus reports the seal's head and how the caller's part of the
// chain verifies, in time bounded by the reader's chain step and window
// whatever the length of the log.
func (r *Reader) ChainStatus(ctx context.Context, shops []int64) (ChainStatus, error) {
	st := ChainStatus{CheckedAt: time.Now().UTC()}
	head, err := r.log.LastSealed(ctx)
	if err != nil {
		return st, fmt.Errorf("chain status: %w", err)
	}
	st.SealedThrough, st.HeadHash = head.Seq, hex.EncodeToString(head.Hash)

	// The walk gets half of the request's remaining time. Rows are kept as
	// they are checked, so a walk cut short by that still moves on, and
	// the request keeps time to answer.
	v := r.chain
	walkCtx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		walkCtx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
	}
	err = v.walk(walkCtx, r.log)
	cutShort := walkCtx.Err() != nil && ctx.Err() == nil
	cancel()
	if err != nil && !cutShort {
		return st, fmt.Errorf("chain status: %w", err)
	}
	v.mu.Lock()
	st.VerifiedThrough = v.through
	var first int64
	for _, shop := range shops {
		st.Checked += v.checked[shop]
		if f, ok := v.first[shop]; ok && (first == 0 || f < first) {
			first = f
		}
	}
	v.mu.Unlock()

	// The caller's newest walked events, hashed again on every request.
	recent, found, err := r.log.FirstRecentMismatch(ctx, shops, st.VerifiedThrough, v.window)
	if err != nil {
		return st, fmt.Errorf("chain status: %w", err)
	}
	if found && (first == 0 || recent < first) {
		first = recent
	}
	if first != 0 {
		st.FirstMismatchSeq = &first
	}
	st.Valid = first == 0

	if st.Unsealed, err = r.log.CountUnsealed(ctx, shops, head); err != nil {
		return st, fmt.Errorf("chain status: %w", err)
	}
	return st, nil
}
