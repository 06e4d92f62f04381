package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// logAdapter reads the log for one projection's consumer group in
// windows, with the gap rule of eventstore.SchemaAdapter:
//
//   - a window is the next batchSize events after the group's offset, in
//     (transaction_id, position) order, below the oldest running
//     transaction; the subscriber's query returns one row per window, its
//     last event, and the handler gets the window as one message;
//   - the handler reads the window's events itself, on the consumer
//     transaction, with window: only the types the projection handles (a
//     payloadless projection gets every event without its payload),
//     decoded once. Every event at or before the window's last one is
//     committed (its transaction is below the oldest running one), so the
//     same window reads the same events whenever it is read;
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
type logAdapter struct {
	eventstore.SchemaAdapter
	batchSize int
	p         Projection
	handled   []string // registered types p handles; nil when payloadless
	query     string   // window's events, see window
}

// decoded is one event of a window as the handler gets it.
type decoded struct {
	rec events.Record
	err error // why the payload could not be decoded
}

// Message metadata of a window: where it starts (after) and ends
// (inclusive).
const (
	metaFromTransaction = "from_transaction_id"
	metaFromPosition    = "from_position"
	metaPosition        = "position"
	metaTransaction     = "transaction_id"
)

func newLogAdapter(p Projection, batchSize int) *logAdapter {
	a := &logAdapter{batchSize: batchSize, p: p}
	if _, ok := p.(payloadless); !ok {
		for _, typ := range events.Types() {
			if p.Handles(typ) {
				a.handled = append(a.handled, typ)
			}
		}
	}
	cols := `position, transaction_id::text, event_id, stream_id, stream_version, type, schema_version, %s, %s,
		coalesce(shop_id, 0), occurred_at, recorded_at, coalesce(dedupe_key, '')`
	bounds := `(transaction_id, position) > ($1::text::xid8, $2) AND (transaction_id, position) <= ($3::text::xid8, $4)`
	// A window holds at most batchSize events. Saying so keeps the planner
	// on an ordered scan of the (transaction_id, position) index: it
	// cannot tell how few rows lie between two row values and otherwise
	// picks a parallel bitmap scan and a sort, 20 times slower.
	limit := ` LIMIT ` + strconv.Itoa(batchSize)
	if len(a.handled) == 0 {
		// Payloadless: every event, none of its payload.
		a.query = `SELECT ` + fmt.Sprintf(cols, `NULL::jsonb`, `NULL::jsonb`) + ` FROM events
		WHERE ` + bounds + ` ORDER BY events.transaction_id, events.position` + limit
	} else {
		quoted := make([]string, len(a.handled))
		for i, t := range a.handled {
			quoted[i] = quoteLiteral(t)
		}
		a.query = `SELECT ` + fmt.Sprintf(cols, `data`, `metadata`) + ` FROM events
		WHERE ` + bounds + ` AND type IN (` + strings.Join(quoted, ", ") + `)
		ORDER BY events.transaction_id, events.position` + limit
	}
	return a
}

// SelectQuery implements wsql.SchemaAdapter: the last event of the next
// window, with the offset the window starts after.
func (a *logAdapter) SelectQuery(_ string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	next := offsets.NextOffsetQuery(eventstore.Topic, consumerGroup)
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
func (a *logAdapter) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
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

// window reads the events of msg's window that the projection handles, in
// log order, on the consumer transaction, and decodes their payloads. An
// event whose payload does not decode comes with the reason.
func (a *logAdapter) window(ctx context.Context, tx *sql.Tx, msg *message.Message) ([]decoded, error) {
	md := msg.Metadata
	rows, err := tx.QueryContext(ctx, a.query, md.Get(metaFromTransaction), md.Get(metaFromPosition),
		md.Get(metaTransaction), md.Get(metaPosition))
	if err != nil {
		return nil, fmt.Errorf("read window: %w", err)
	}
	defer rows.Close()
	out := make([]decoded, 0, a.batchSize)
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
		d := decoded{rec: r}
		if data != nil {
			d.rec.RawData = data
			d.rec.Metadata, d.err = events.DecodeMetadata(meta)
			if d.err == nil {
				d.rec.Data, d.err = events.Decode(typ, r.SchemaVersion, data)
			}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read window: %w", err)
	}
	return out, nil
}

// placeOf reads the end of a window from its message, as the record
// errors about the window name.
func placeOf(msg *message.Message) (events.Record, error) {
	c, err := windowCursor(msg, metaPosition, metaTransaction)
	return events.Record{Position: c.Position, TransactionID: c.TransactionID}, err
}

// windowCursor reads a place in the log from a window message's metadata.
func windowCursor(msg *message.Message, posKey, txKey string) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	var err error
	if c.Position, err = strconv.ParseInt(msg.Metadata.Get(posKey), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: %s: %w", msg.UUID, posKey, err)
	}
	if c.TransactionID, err = strconv.ParseUint(msg.Metadata.Get(txKey), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: %s: %w", msg.UUID, txKey, err)
	}
	return c, nil
}

// flushingOffsets stores a consumer group's offset like
// eventstore.OffsetsAdapter, after writing what the group's projection
// planned for the batch. The watermill-sql subscriber asks for the ack
// query once per batch, on the batch's transaction, after the last event
// was handled and before the offset is stored and the transaction
// commits; flush writes there, so the read model and the offset commit
// together. flush returns the row to store the offset of (an earlier one
// when an event could not be written), or false to store none.
type flushingOffsets struct {
	eventstore.OffsetsAdapter
	flush func(ack wsql.Row) (wsql.Row, bool)
}

// AckMessageQuery implements wsql.OffsetsAdapter.
func (a flushingOffsets) AckMessageQuery(topic string, row wsql.Row, consumerGroup string) wsql.Query {
	ack, ok := a.flush(row)
	if !ok {
		return wsql.Query{Query: `SELECT 1`}
	}
	return a.OffsetsAdapter.AckMessageQuery(topic, ack, consumerGroup)
}

// newLogSubscriber returns a subscriber for one projection's consumer
// group reading through adapter and storing offsets through offsets.
func newLogSubscriber(db *sql.DB, group string, cfg RunnerConfig, adapter *logAdapter, offsets wsql.OffsetsAdapter, logger watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	deadline := cfg.AckDeadline
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  group,
		SchemaAdapter:  adapter,
		OffsetsAdapter: offsets,
		PollInterval:   cfg.PollInterval,
		ResendInterval: cfg.PollInterval,
		RetryInterval:  max(cfg.PollInterval, 100*time.Millisecond),
		AckDeadline:    &deadline,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("new subscriber %s: %w", group, err)
	}
	return sub, nil
}

// levelLogger is watermill's slog adapter that checks the level before it
// builds anything: the subscriber and router log every message at trace
// level, and the plain adapter turns each call's fields into attributes
// (and each With into a new handler) even when nothing is printed.
type levelLogger struct {
	l      *slog.Logger
	parent *levelLogger
	fields watermill.LogFields
}

func newLevelLogger(l *slog.Logger) watermill.LoggerAdapter { return levelLogger{l: l} }

func (w levelLogger) emit(level slog.Level, msg string, err error, fields watermill.LogFields) {
	if !w.l.Enabled(context.Background(), level) {
		return
	}
	all := watermill.LogFields{}
	for x := &w; x != nil; x = x.parent {
		for k, v := range x.fields {
			if _, ok := all[k]; !ok {
				all[k] = v
			}
		}
	}
	all = all.Add(fields)
	a := watermill.NewSlogLogger(w.l)
	switch {
	case level >= slog.LevelError:
		a.Error(msg, err, all)
	case level >= slog.LevelInfo:
		a.Info(msg, all)
	case level >= slog.LevelDebug:
		a.Debug(msg, all)
	default:
		a.Trace(msg, all)
	}
}

func (w levelLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.emit(slog.LevelError, msg, err, fields)
}

func (w levelLogger) Info(msg string, fields watermill.LogFields) {
	w.emit(slog.LevelInfo, msg, nil, fields)
}

func (w levelLogger) Debug(msg string, fields watermill.LogFields) {
	w.emit(slog.LevelDebug, msg, nil, fields)
}

func (w levelLogger) Trace(msg string, fields watermill.LogFields) {
	w.emit(watermill.LevelTrace, msg, nil, fields)
}

// With implements watermill.LoggerAdapter; the fields are kept, not
// formatted, until something is logged (inner fields win, as With's do).
func (w levelLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	parent := w
	return levelLogger{l: w.l, parent: &parent, fields: fields}
}
