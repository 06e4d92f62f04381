package eventstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/shopledger/shopledger/events"
)

// WindowAdapter reads the log for one consumer group in windows, with the
// gap rule of SchemaAdapter:
//
//   - a window is the next batchSize events after the group's offset, in
//     (transaction_id, position) order, below the oldest running
//     appender; the subscriber's query returns one row per window, its
//     last event, and the handler gets the window as one message;
//   - the handler reads the window's events itself with Read, on the
//     consumer transaction: only the types it asked for (a payloadless
//     adapter gives every event without its payload), decoded once. Every
//     event at or before the window's last one is committed (its
//     transaction is below the horizon), so the same window reads the same
//     events whenever it is read;
//   - the window's bounds are compared as rows with the offset taken as
//     scalar subqueries, so the comparison is an index condition on the
//     (transaction_id, position) index. Joined to the offsets row instead,
//     it is a join filter and every batch walks the index from the first
//     event: a catch-up that slows down as the log grows;
//   - it orders by the table's transaction_id, not by a selected
//     transaction_id::text, which sorts "1000" before "999" and so, once
//     transaction ids gain a digit, delivers a newer transaction first and
//     skips the older one for good.
//
// One message per window instead of one per event spares the subscriber
// and the router their per-message work (contexts, channels, logging),
// which cost about as much as applying an event.
type WindowAdapter struct {
	SchemaAdapter
	batchSize int
	query     string // a window's events, see Read
}

// WindowEvent is one event of a window as Read gives it.
type WindowEvent struct {
	Record events.Record
	// Err says why the payload could not be decoded.
	Err error
}

// Message metadata of a window: where it starts (after); it ends at
// metaPosition/metaTransaction (inclusive).
const (
	metaFromTransaction = "from_transaction_id"
	metaFromPosition    = "from_position"
)

// NewWindowAdapter reads windows of batchSize events. Read gives the
// events of the listed types with their payloads; with no types it gives
// every event without its payload.
func NewWindowAdapter(types []string, batchSize int) *WindowAdapter {
	a := &WindowAdapter{batchSize: batchSize}
	cols := `position, transaction_id::text, event_id, stream_id, stream_version, type, schema_version, %s, %s,
		coalesce(shop_id, 0), occurred_at, recorded_at, coalesce(dedupe_key, '')`
	bounds := `(transaction_id, position) > ($1::text::xid8, $2) AND (transaction_id, position) <= ($3::text::xid8, $4)`
	// A window holds at most batchSize events. Saying so keeps the planner
	// on an ordered scan of the (transaction_id, position) index: it
	// cannot tell how few rows lie between two row values and otherwise
	// picks a parallel bitmap scan and a sort, 20 times slower.
	limit := ` LIMIT ` + strconv.Itoa(batchSize)
	if len(types) == 0 {
		a.query = `SELECT ` + fmt.Sprintf(cols, `NULL::jsonb`, `NULL::jsonb`) + ` FROM events
		WHERE ` + bounds + ` ORDER BY events.transaction_id, events.position` + limit
		return a
	}
	// The types are literals, not a parameter: the list is fixed for the
	// adapter's life and the planner estimates literal lists better.
	quoted := make([]string, len(types))
	for i, t := range types {
		quoted[i] = "'" + strings.ReplaceAll(t, "'", "''") + "'"
	}
	a.query = `SELECT ` + fmt.Sprintf(cols, `data`, `metadata`) + ` FROM events
		WHERE ` + bounds + ` AND type IN (` + strings.Join(quoted, ", ") + `)
		ORDER BY events.transaction_id, events.position` + limit
	return a
}

// SelectQuery implements wsql.SchemaAdapter: the last event of the next
// window, with the offset the window starts after.
func (a *WindowAdapter) SelectQuery(_ string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	next := offsets.NextOffsetQuery(Topic, consumerGroup)
	q := `WITH last_processed AS (` + next.Query + `), w AS (
		SELECT transaction_id, position FROM events
		WHERE (events.transaction_id, events.position) > (
				coalesce((SELECT last_processed_transaction_id FROM last_processed), '0'::xid8),
				coalesce((SELECT offset_acked FROM last_processed), 0))
		  AND events.transaction_id < log_horizon()
		ORDER BY events.transaction_id, events.position
		LIMIT ` + strconv.Itoa(a.batchSize) + `
	)
	SELECT w.position, w.transaction_id::text,
		coalesce((SELECT last_processed_transaction_id FROM last_processed), '0'::xid8)::text,
		coalesce((SELECT offset_acked FROM last_processed), 0)
	FROM w ORDER BY w.transaction_id DESC, w.position DESC LIMIT 1`
	return wsql.Query{Query: q, Args: next.Args}
}

// UnmarshalMessage implements wsql.SchemaAdapter: a window's message
// carries its bounds.
func (a *WindowAdapter) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
	var pos, fromPos int64
	var txid, fromTxid string
	if err := row.Scan(&pos, &txid, &fromTxid, &fromPos); err != nil {
		return wsql.Row{}, fmt.Errorf("scan window: %w", err)
	}
	for _, t := range []string{txid, fromTxid} {
		if _, err := strconv.ParseUint(t, 10, 64); err != nil {
			return wsql.Row{}, fmt.Errorf("scan window ending at %d: transaction id %q: %w", pos, t, err)
		}
	}
	id := "window-" + txid + "-" + strconv.FormatInt(pos, 10)
	msg := message.NewMessage(id, nil)
	msg.Metadata = message.Metadata{
		metaPosition:        strconv.FormatInt(pos, 10),
		metaTransaction:     txid,
		metaFromTransaction: fromTxid,
		metaFromPosition:    strconv.FormatInt(fromPos, 10),
	}
	return wsql.Row{
		Offset:    pos,
		UUID:      []byte(id),
		Msg:       msg,
		ExtraData: map[string]any{metaTransaction: txid},
	}, nil
}

// Read reads the events of msg's window, in log order, on the consumer
// transaction, and decodes their payloads. An event whose payload does not
// decode comes with the reason.
func (a *WindowAdapter) Read(ctx context.Context, tx *sql.Tx, msg *message.Message) ([]WindowEvent, error) {
	md := msg.Metadata
	rows, err := tx.QueryContext(ctx, a.query, md.Get(metaFromTransaction), md.Get(metaFromPosition),
		md.Get(metaTransaction), md.Get(metaPosition))
	if err != nil {
		return nil, fmt.Errorf("read window: %w", err)
	}
	defer rows.Close()
	out := make([]WindowEvent, 0, a.batchSize)
	for rows.Next() {
		var r events.Record
		var txid, typ string
		var data, meta []byte
		if err := rows.Scan(&r.Position, &txid, &r.ID, &r.StreamID, &r.StreamVersion, &typ, &r.SchemaVersion,
			&data, &meta, &r.ShopID, &r.OccurredAt, &r.RecordedAt, &r.DedupeKey); err != nil {
			return nil, fmt.Errorf("read window: %w", err)
		}
		if r.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
			return nil, fmt.Errorf("read window at %d: transaction id %q: %w", r.Position, txid, err)
		}
		r.OccurredAt, r.RecordedAt = r.OccurredAt.UTC(), r.RecordedAt.UTC()
		w := WindowEvent{Record: r}
		if data != nil {
			w.Record.RawData = data
			w.Record.Metadata, w.Err = events.DecodeMetadata(meta)
			if w.Err == nil {
				w.Record.Data, w.Err = events.Decode(typ, r.SchemaVersion, data)
			}
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read window: %w", err)
	}
	return out, nil
}

// WindowEnd is the last place of a window message (inclusive).
func WindowEnd(msg *message.Message) (Cursor, error) {
	return windowCursor(msg, metaPosition, metaTransaction)
}

// WindowStart is where a window message starts (after).
func WindowStart(msg *message.Message) (Cursor, error) {
	return windowCursor(msg, metaFromPosition, metaFromTransaction)
}

func windowCursor(msg *message.Message, posKey, txKey string) (Cursor, error) {
	var c Cursor
	var err error
	if c.Position, err = strconv.ParseInt(msg.Metadata.Get(posKey), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: %s: %w", msg.UUID, posKey, err)
	}
	if c.TransactionID, err = strconv.ParseUint(msg.Metadata.Get(txKey), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: %s: %w", msg.UUID, txKey, err)
	}
	return c, nil
}

// OffsetRow is the row that stores a group's offset at c, as the offsets
// adapter's ack query takes it.
func OffsetRow(c Cursor) wsql.Row {
	return wsql.Row{Offset: c.Position, ExtraData: map[string]any{metaTransaction: strconv.FormatUint(c.TransactionID, 10)}}
}

// CursorOfRow reads the log cursor of a row a schema adapter built.
func CursorOfRow(row wsql.Row) (Cursor, error) {
	txid, _ := row.ExtraData[metaTransaction].(string)
	n, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("row at %d: transaction id %q: %w", row.Offset, txid, err)
	}
	return Cursor{TransactionID: n, Position: row.Offset}, nil
}
