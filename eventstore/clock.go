package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrLogOutOfOrder means the database holds log transaction ids at or
// above the ones this cluster hands out: it was restored from another
// cluster and not adopted yet. Consumers would see none of those events,
// and new events would sort before them.
var ErrLogOutOfOrder = errors.New("the log holds transaction ids this cluster has not reached")

// AdoptHint is what an operator runs to fix ErrLogOutOfOrder.
const AdoptHint = "run `ledger migrate` (or `ledger restore`), which adopts a log restored from another cluster"

// CheckOrder returns nil when every log id stored in the log, the consumer
// offsets, the seal and the projection checkpoints lies below the next id
// this cluster can hand out, and an error wrapping ErrLogOutOfOrder naming
// the table and ids otherwise. Binaries call it at start and refuse to run
// on a log they cannot order.
func CheckOrder(ctx context.Context, q Queryer) error {
	var f orderFacts
	if err := q.QueryRowContext(ctx, orderQuery).Scan(&f.highest, &f.heldBy, &f.next, &f.out); err != nil {
		return fmt.Errorf("check log order: %w", err)
	}
	return f.err()
}

// CheckOrderTx is CheckOrder on a pgx transaction, inside its snapshot.
func CheckOrderTx(ctx context.Context, tx pgx.Tx) error {
	var f orderFacts
	if err := tx.QueryRow(ctx, orderQuery).Scan(&f.highest, &f.heldBy, &f.next, &f.out); err != nil {
		return fmt.Errorf("check log order: %w", err)
	}
	return f.err()
}

const orderQuery = `SELECT h.highest::text, coalesce(h.held_by, ''), log_next_xid()::text, h.highest >= log_next_xid()
	FROM log_highest_xid() h`

type orderFacts struct {
	highest, heldBy, next string
	out                   bool
}

func (f orderFacts) err() error {
	if !f.out {
		return nil
	}
	return fmt.Errorf("%w: %s holds transaction id %s but this cluster's next is %s; %s",
		ErrLogOutOfOrder, f.heldBy, f.highest, f.next, AdoptHint)
}

// Adopt makes a log restored from another cluster orderable here: it raises
// the log clock's shift so that the restored ids all lie below the
// visibility horizon and every new append orders after them. It returns
// how much the shift rose; 0 when the log was already in order.
func Adopt(ctx context.Context, q Queryer) (int64, error) {
	var raised int64
	if err := q.QueryRowContext(ctx, `SELECT log_adopt()`).Scan(&raised); err != nil {
		return 0, fmt.Errorf("adopt log: %w", err)
	}
	return raised, nil
}

// ClockShift returns the log clock's shift: what is added to this
// cluster's transaction ids to make log ids.
func ClockShift(ctx context.Context, q Queryer) (int64, error) {
	var shift int64
	if err := q.QueryRowContext(ctx, `SELECT shift FROM log_clock`).Scan(&shift); err != nil {
		return 0, fmt.Errorf("log clock: %w", err)
	}
	return shift, nil
}
