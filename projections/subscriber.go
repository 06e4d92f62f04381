package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// logAdapter reads the log for one projection's consumer group with the
// gap rule of eventstore.SchemaAdapter, and hands the handler the records
// it decoded while reading the batch:
//
//   - it orders by the table's transaction_id, not by a selected
//     transaction_id::text, which sorts "1000" before "999" and so, once
//     transaction ids gain a digit, delivers a newer transaction first and
//     skips the older one for good;
//   - it compares (transaction_id, position) as a row with the offset
//     taken as scalar subqueries, so the comparison is an index condition
//     and the (transaction_id, position) index starts at the offset and
//     reads one batch. Joined to the offsets row instead, the comparison
//     is a join filter and every batch walks the index from the first
//     event: a catch-up that slows down as the log grows;
//   - of each window of the log it returns only the events of the types
//     the projection handles, and the window's last event so that the
//     offset reaches the window's end (a payloadless projection gets every
//     event without its payload); and it decodes them once, into the record
//     the handler takes by message id; the message itself carries only the
//     type and the event's place in the log.
//
// The subscriber reads a whole batch (UnmarshalMessage for every row)
// before it hands out the first message, and asks for the next batch's
// query only after the last message was acknowledged; records therefore
// live from one SelectQuery to the next.
type logAdapter struct {
	eventstore.SchemaAdapter
	batchSize int
	p         Projection
	handled   []string // registered types p handles; nil when payloadless

	mu      sync.Mutex
	records map[string]decoded
	order   []string // message ids of the batch, in log order
}

// decoded is one event of the batch as the handler gets it.
type decoded struct {
	rec events.Record
	err error // why the payload could not be decoded
}

func newLogAdapter(p Projection, batchSize int) *logAdapter {
	a := &logAdapter{batchSize: batchSize, p: p}
	if _, ok := p.(payloadless); !ok {
		for _, typ := range events.Types() {
			if p.Handles(typ) {
				a.handled = append(a.handled, typ)
			}
		}
	}
	return a
}

// SelectQuery implements wsql.SchemaAdapter.
func (a *logAdapter) SelectQuery(_ string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	a.mu.Lock()
	a.records = make(map[string]decoded, a.batchSize)
	a.order = a.order[:0]
	a.mu.Unlock()
	next := offsets.NextOffsetQuery(eventstore.Topic, consumerGroup)
	cols := `position, transaction_id::text, event_id, stream_id, stream_version, type, schema_version, %s, %s,
		coalesce(shop_id, 0), occurred_at, recorded_at, coalesce(dedupe_key, '')`
	window := `SELECT * FROM events
	WHERE (events.transaction_id, events.position) > (
			coalesce((SELECT last_processed_transaction_id FROM last_processed), '0'::xid8),
			coalesce((SELECT offset_acked FROM last_processed), 0))
	  AND events.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY events.transaction_id, events.position
	LIMIT ` + strconv.Itoa(a.batchSize)
	var q string
	if len(a.handled) == 0 {
		// Payloadless: every event, none of its payload.
		q = `WITH last_processed AS (` + next.Query + `), w AS (` + window + `)
		SELECT ` + fmt.Sprintf(cols, `NULL::jsonb`, `NULL::jsonb`) + ` FROM w
		ORDER BY w.transaction_id, w.position`
	} else {
		// The events the projection handles, and the window's last event
		// whatever its type, so that the group's offset reaches the end
		// of the window.
		quoted := make([]string, len(a.handled))
		for i, t := range a.handled {
			quoted[i] = quoteLiteral(t)
		}
		q = `WITH last_processed AS (` + next.Query + `), w AS MATERIALIZED (` + window + `)
		SELECT ` + fmt.Sprintf(cols, `data`, `metadata`) + ` FROM w
		WHERE w.type IN (` + strings.Join(quoted, ", ") + `)
		   OR (w.transaction_id, w.position) = (SELECT transaction_id, position FROM w ORDER BY transaction_id DESC, position DESC LIMIT 1)
		ORDER BY w.transaction_id, w.position`
	}
	return wsql.Query{Query: q, Args: next.Args}
}

// UnmarshalMessage implements wsql.SchemaAdapter.
func (a *logAdapter) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
	var r events.Record
	var txid, typ string
	var data, meta []byte
	if err := row.Scan(&r.Position, &txid, &r.ID, &r.StreamID, &r.StreamVersion, &typ, &r.SchemaVersion,
		&data, &meta, &r.ShopID, &r.OccurredAt, &r.RecordedAt, &r.DedupeKey); err != nil {
		return wsql.Row{}, fmt.Errorf("scan event: %w", err)
	}
	var err error
	if r.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
		return wsql.Row{}, fmt.Errorf("scan event %d: transaction id %q: %w", r.Position, txid, err)
	}
	r.OccurredAt, r.RecordedAt = r.OccurredAt.UTC(), r.RecordedAt.UTC()
	d := decoded{rec: r}
	if data != nil && a.handles(typ) {
		d.rec.RawData = data
		d.rec.Metadata, d.err = events.DecodeMetadata(meta)
		if d.err == nil {
			d.rec.Data, d.err = events.Decode(typ, r.SchemaVersion, data)
		}
	}
	id := r.ID.String()
	msg := message.NewMessage(id, nil)
	msg.Metadata = message.Metadata{
		"type":           typ,
		"position":       strconv.FormatInt(r.Position, 10),
		"transaction_id": txid,
	}
	a.mu.Lock()
	a.records[id] = d
	a.order = append(a.order, id)
	a.mu.Unlock()
	return wsql.Row{
		Offset:    r.Position,
		UUID:      []byte(id),
		Msg:       msg,
		ExtraData: map[string]any{"transaction_id": txid},
	}, nil
}

func (a *logAdapter) handles(typ string) bool {
	for _, t := range a.handled {
		if t == typ {
			return true
		}
	}
	return false
}

// batch returns the decoded events of the current batch that the
// projection handles, in log order.
func (a *logAdapter) batch() []events.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]events.Record, 0, len(a.order))
	for _, id := range a.order {
		if d := a.records[id]; d.err == nil && d.rec.Data != nil {
			out = append(out, d.rec)
		}
	}
	return out
}

// record returns the event of msg as the batch read decoded it.
func (a *logAdapter) record(msg *message.Message) (events.Record, error) {
	a.mu.Lock()
	d, ok := a.records[msg.UUID]
	a.mu.Unlock()
	if !ok {
		rec, err := placeOf(msg)
		if err != nil {
			return rec, err
		}
		return rec, fmt.Errorf("event %s at %d is not in the consumer's batch", msg.UUID, rec.Position)
	}
	if d.err != nil {
		return d.rec, fmt.Errorf("event %s at %d: %w", msg.UUID, d.rec.Position, d.err)
	}
	return d.rec, nil
}

// placeOf reads an event's id and place in the log from its message.
func placeOf(msg *message.Message) (events.Record, error) {
	var rec events.Record
	var err error
	if rec.ID, err = uuid.Parse(msg.UUID); err != nil {
		return rec, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	if rec.Position, err = strconv.ParseInt(msg.Metadata.Get("position"), 10, 64); err != nil {
		return rec, fmt.Errorf("message %s: position: %w", msg.UUID, err)
	}
	if rec.TransactionID, err = strconv.ParseUint(msg.Metadata.Get("transaction_id"), 10, 64); err != nil {
		return rec, fmt.Errorf("message %s: transaction id: %w", msg.UUID, err)
	}
	return rec, nil
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
