package eventstore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/internal/defaults"
)

// Topic is the watermill topic that names the log. There is one log; the
// topic exists because watermill's API asks for one.
const Topic = "events"

// offsetsTable is created by migrations, never by watermill.
const offsetsTable = "event_offsets"

// Message metadata keys set by the schema adapter.
const (
	metaType          = "type"
	metaSchemaVersion = "schema_version"
	metaStream        = "stream_id"
	metaStreamVersion = "stream_version"
	metaPosition      = "position"
	metaTransaction   = "transaction_id"
	metaShop          = "shop_id"
	metaOccurred      = "occurred_at"
	metaRecorded      = "recorded_at"
	metaDedupe        = "dedupe_key"
	metaMetadata      = "metadata"
)

// SchemaAdapter lets a watermill-sql subscriber read the events table
// itself, in (transaction_id, position) order and only below the oldest
// transaction that may still append (see log_horizon), so no consumer
// ever skips an event that commits late.
// Publishing through watermill is refused: the store is the only writer.
type SchemaAdapter struct {
	// BatchSize is how many events one subscriber transaction reads. All of
	// them commit together with the consumer's offset.
	BatchSize int
}

var errPublishRefused = errors.New("the event log is written only through eventstore")

// InsertQuery implements wsql.SchemaAdapter.
func (SchemaAdapter) InsertQuery(string, message.Messages) (wsql.Query, error) {
	return wsql.Query{}, errPublishRefused
}

// SchemaInitializingQueries implements wsql.SchemaAdapter; migrations own
// the schema.
func (SchemaAdapter) SchemaInitializingQueries(string) []wsql.Query { return nil }

// SubscribeIsolationLevel implements wsql.SchemaAdapter.
func (SchemaAdapter) SubscribeIsolationLevel() sql.IsolationLevel {
	return sql.LevelRepeatableRead
}

// SelectQuery implements wsql.SchemaAdapter.
func (a SchemaAdapter) SelectQuery(_ string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	next := offsets.NextOffsetQuery(Topic, consumerGroup)
	batch := a.BatchSize
	defaults.Positive(&batch, 100)
	// A row comparison lets the planner walk the (transaction_id, position)
	// index from the group's offset instead of sorting what is left, and
	// ORDER BY names the table's columns: selectColumns exposes a text cast
	// under the bare name, and text sorts "999" after "1000".
	q := `
	WITH last_processed AS (` + next.Query + `)
	SELECT ` + selectColumns + ` FROM events
	WHERE (events.transaction_id, events.position) > (
			(SELECT last_processed_transaction_id FROM last_processed),
			(SELECT coalesce(offset_acked, 0) FROM last_processed))
		AND events.transaction_id < log_horizon()
	ORDER BY events.transaction_id, events.position
	LIMIT ` + strconv.Itoa(batch)
	return wsql.Query{Query: q, Args: next.Args}
}

// UnmarshalMessage implements wsql.SchemaAdapter. The message's UUID is the
// event id, its payload the stored data and its metadata the envelope.
func (SchemaAdapter) UnmarshalMessage(row wsql.Scanner) (wsql.Row, error) {
	var r events.Record
	var txid, typ string
	var data, meta []byte
	if err := row.Scan(&r.Position, &txid, &r.ID, &r.StreamID, &r.StreamVersion, &typ, &r.SchemaVersion, &data, &meta, &r.ShopID, &r.OccurredAt, &r.RecordedAt, &r.DedupeKey); err != nil {
		return wsql.Row{}, fmt.Errorf("scan event: %w", err)
	}
	msg := message.NewMessage(r.ID.String(), data)
	msg.Metadata = message.Metadata{
		metaType:          typ,
		metaSchemaVersion: strconv.Itoa(r.SchemaVersion),
		metaStream:        r.StreamID,
		metaStreamVersion: strconv.FormatInt(r.StreamVersion, 10),
		metaPosition:      strconv.FormatInt(r.Position, 10),
		metaTransaction:   txid,
		metaShop:          strconv.FormatInt(r.ShopID, 10),
		metaOccurred:      r.OccurredAt.UTC().Format(time.RFC3339Nano),
		metaRecorded:      r.RecordedAt.UTC().Format(time.RFC3339Nano),
		metaDedupe:        r.DedupeKey,
		metaMetadata:      string(meta),
	}
	return wsql.Row{
		Offset:    r.Position,
		UUID:      []byte(msg.UUID),
		Payload:   data,
		Metadata:  meta,
		Msg:       msg,
		ExtraData: map[string]any{metaTransaction: txid},
	}, nil
}

// OffsetsAdapter stores consumer group offsets in event_offsets. It passes
// transaction ids as text: database/sql drivers do not know xid8, and a
// lossy conversion there would silently skip events.
type OffsetsAdapter struct {
	wsql.DefaultPostgreSQLOffsetsAdapter
}

// NewOffsetsAdapter returns the adapter over event_offsets.
func NewOffsetsAdapter() OffsetsAdapter {
	return OffsetsAdapter{wsql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(string) string { return offsetsTable },
	}}
}

// NextOffsetQuery implements wsql.OffsetsAdapter. Locking the group's row
// gives the consumer transaction an id, so it announces itself as an
// appender first (see log_announce): handlers may append in it, as the
// alerter does.
func (a OffsetsAdapter) NextOffsetQuery(_ string, consumerGroup string) wsql.Query {
	return wsql.Query{
		Query: `SELECT offset_acked, last_processed_transaction_id FROM ` + offsetsTable + `
			WHERE consumer_group = $1 AND log_announce()
			FOR UPDATE`,
		Args: []any{consumerGroup},
	}
}

// AckMessageQuery implements wsql.OffsetsAdapter.
func (a OffsetsAdapter) AckMessageQuery(_ string, row wsql.Row, consumerGroup string) wsql.Query {
	return wsql.Query{
		Query: `INSERT INTO ` + offsetsTable + ` (offset_acked, last_processed_transaction_id, consumer_group)
			VALUES ($1, $2::text::xid8, $3)
			ON CONFLICT (consumer_group) DO UPDATE SET
				offset_acked = excluded.offset_acked,
				last_processed_transaction_id = excluded.last_processed_transaction_id`,
		Args: []any{row.Offset, row.ExtraData[metaTransaction], consumerGroup},
	}
}

// SchemaInitializingQueries implements wsql.OffsetsAdapter; migrations own
// the schema.
func (OffsetsAdapter) SchemaInitializingQueries(string) []wsql.Query { return nil }

// SubscriberConfig tunes a log subscriber.
type SubscriberConfig struct {
	ConsumerGroup string
	BatchSize     int
	PollInterval  time.Duration
	AckDeadline   time.Duration
}

// NewSubscriber returns a watermill subscriber that reads the log for one
// consumer group. Handlers get the transaction that will store the group's
// offset from wsql.TxFromContext(msg.Context()).
//
// A handler that writes on that transaction must recognise an event it
// applied before, as projections do with their checkpoint: when the
// subscriber closes at the moment a handler acks, watermill-sql chooses
// between the ack and the close at random, and on the close it stores the
// offset of the event before while the transaction, with the handler's
// writes, still commits. The event is then delivered again after a
// restart, at most once per close.
func NewSubscriber(db *sql.DB, cfg SubscriberConfig, logger watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	if cfg.ConsumerGroup == "" {
		return nil, errors.New("new subscriber: consumer group is required")
	}
	poll := cfg.PollInterval
	defaults.Positive(&poll, 100*time.Millisecond)
	deadline := cfg.AckDeadline
	defaults.Positive(&deadline, 30*time.Second)
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  cfg.ConsumerGroup,
		SchemaAdapter:  SchemaAdapter{BatchSize: cfg.BatchSize},
		OffsetsAdapter: NewOffsetsAdapter(),
		PollInterval:   poll,
		ResendInterval: poll,
		RetryInterval:  poll,
		AckDeadline:    &deadline,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("new subscriber %s: %w", cfg.ConsumerGroup, err)
	}
	return sub, nil
}

// RecordFromMessage rebuilds the log record a subscriber delivered,
// decoding (and upcasting) its payload.
func RecordFromMessage(msg *message.Message) (events.Record, error) {
	var r events.Record
	var err error
	md := msg.Metadata
	if r.ID, err = parseUUID(msg.UUID); err != nil {
		return r, err
	}
	r.StreamID = md.Get(metaStream)
	r.DedupeKey = md.Get(metaDedupe)
	if r.SchemaVersion, err = strconv.Atoi(md.Get(metaSchemaVersion)); err != nil {
		return r, fmt.Errorf("message %s: schema version: %w", msg.UUID, err)
	}
	if r.StreamVersion, err = strconv.ParseInt(md.Get(metaStreamVersion), 10, 64); err != nil {
		return r, fmt.Errorf("message %s: stream version: %w", msg.UUID, err)
	}
	if r.Position, err = strconv.ParseInt(md.Get(metaPosition), 10, 64); err != nil {
		return r, fmt.Errorf("message %s: position: %w", msg.UUID, err)
	}
	if r.TransactionID, err = strconv.ParseUint(md.Get(metaTransaction), 10, 64); err != nil {
		return r, fmt.Errorf("message %s: transaction id: %w", msg.UUID, err)
	}
	if r.ShopID, err = strconv.ParseInt(md.Get(metaShop), 10, 64); err != nil {
		return r, fmt.Errorf("message %s: shop id: %w", msg.UUID, err)
	}
	if r.OccurredAt, err = time.Parse(time.RFC3339Nano, md.Get(metaOccurred)); err != nil {
		return r, fmt.Errorf("message %s: occurred at: %w", msg.UUID, err)
	}
	if r.RecordedAt, err = time.Parse(time.RFC3339Nano, md.Get(metaRecorded)); err != nil {
		return r, fmt.Errorf("message %s: recorded at: %w", msg.UUID, err)
	}
	if r.Metadata, err = events.DecodeMetadata([]byte(md.Get(metaMetadata))); err != nil {
		return r, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	r.RawData = append(json.RawMessage(nil), msg.Payload...)
	if r.Data, err = events.Decode(md.Get(metaType), r.SchemaVersion, msg.Payload); err != nil {
		return r, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	return r, nil
}
