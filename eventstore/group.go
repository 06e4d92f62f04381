package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrGroupMoved means a consumer group's offset is no longer where its
// reader found it: another reader of the same group advanced it first.
var ErrGroupMoved = errors.New("consumer group offset moved")

// Group reads the log for one consumer group without holding a
// transaction between its reads and its commits. A watermill subscriber
// keeps one transaction open from reading a batch until every message of
// it is acknowledged, and that transaction holds a transaction id (its
// offset row is locked FOR UPDATE); every consumer in the cluster reads
// only below the oldest running transaction, so a handler that talks to
// the network inside it stalls them all. A Group instead reads with plain
// statements and moves the offset with AdvanceIn, inside a short
// transaction of the caller's that may also hold the writes belonging to
// the messages it passes.
//
// It reads the same rows, in the same order and under the same visibility
// rule, as the watermill subscribers: the query is SchemaAdapter's.
type Group struct {
	db      *sql.DB
	name    string
	schema  SchemaAdapter
	offsets OffsetsAdapter
}

// GroupMessage is one event of a batch, with its place in the log and
// its type, known without decoding the payload.
type GroupMessage struct {
	Msg           *message.Message
	Cursor        Cursor
	Type          string
	SchemaVersion int
}

// NewGroup returns the reader of group, batch events at a time.
func NewGroup(db *sql.DB, group string, batch int) *Group {
	return &Group{db: db, name: group, schema: SchemaAdapter{BatchSize: batch}, offsets: NewOffsetsAdapter()}
}

// Name is the consumer group's name.
func (g *Group) Name() string { return g.name }

// Init creates the group's offset row (at the log's start) unless it
// exists.
func (g *Group) Init(ctx context.Context) error {
	for _, q := range g.offsets.BeforeSubscribingQueries(Topic, g.name) {
		if _, err := g.db.ExecContext(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("init group %s: %w", g.name, err)
		}
	}
	return nil
}

// Offset returns the group's committed offset.
func (g *Group) Offset(ctx context.Context) (Cursor, error) {
	var c Cursor
	var txid string
	err := g.db.QueryRowContext(ctx, `SELECT coalesce(offset_acked, 0), last_processed_transaction_id::text
		FROM `+offsetsTable+` WHERE consumer_group = $1`, g.name).Scan(&c.Position, &txid)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("offset of group %s: no offset row (Init first)", g.name)
	}
	if err != nil {
		return c, fmt.Errorf("offset of group %s: %w", g.name, err)
	}
	if c.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
		return c, fmt.Errorf("offset of group %s: transaction id %q: %w", g.name, txid, err)
	}
	return c, nil
}

// Read returns the group's offset and the next batch after it. Both are
// plain reads: no transaction id is taken and no row is locked.
func (g *Group) Read(ctx context.Context) (Cursor, []GroupMessage, error) {
	from, err := g.Offset(ctx)
	if err != nil {
		return from, nil, err
	}
	q := g.schema.SelectQuery(Topic, g.name, unlockedOffsets{g.offsets})
	rows, err := g.db.QueryContext(ctx, q.Query, q.Args...)
	if err != nil {
		return from, nil, fmt.Errorf("read group %s: %w", g.name, err)
	}
	defer rows.Close()
	var out []GroupMessage
	for rows.Next() {
		row, err := g.schema.UnmarshalMessage(rows)
		if err != nil {
			return from, nil, fmt.Errorf("read group %s: %w", g.name, err)
		}
		c, err := cursorOfMessage(row.Msg)
		if err != nil {
			return from, nil, fmt.Errorf("read group %s: %w", g.name, err)
		}
		// The adapter wrote this metadata from integer columns.
		version, _ := strconv.Atoi(row.Msg.Metadata.Get(metaSchemaVersion))
		out = append(out, GroupMessage{Msg: row.Msg, Cursor: c, Type: row.Msg.Metadata.Get(metaType), SchemaVersion: version})
	}
	if err := rows.Err(); err != nil {
		return from, nil, fmt.Errorf("read group %s: %w", g.name, err)
	}
	return from, out, nil
}

// AdvanceIn moves the group's offset from from to to inside tx, locking
// the offset row until tx ends. It fails with ErrGroupMoved, changing
// nothing, when the stored offset is not from.
func (g *Group) AdvanceIn(ctx context.Context, tx *sql.Tx, from, to Cursor) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+offsetsTable+`
		WHERE consumer_group = $1 AND coalesce(offset_acked, 0) = $2 AND last_processed_transaction_id = $3::text::xid8
		FOR UPDATE`, g.name, from.Position, strconv.FormatUint(from.TransactionID, 10)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("advance group %s from %v: %w", g.name, from, ErrGroupMoved)
	}
	if err != nil {
		return fmt.Errorf("advance group %s: %w", g.name, err)
	}
	ack := g.offsets.AckMessageQuery(Topic, wsql.Row{
		Offset:    to.Position,
		ExtraData: map[string]any{metaTransaction: strconv.FormatUint(to.TransactionID, 10)},
	}, g.name)
	if _, err := tx.ExecContext(ctx, ack.Query, ack.Args...); err != nil {
		return fmt.Errorf("advance group %s to %v: %w", g.name, to, err)
	}
	return nil
}

// unlockedOffsets reads the offset row without FOR UPDATE: that lock
// takes a transaction id, and Read must not hold one.
type unlockedOffsets struct{ OffsetsAdapter }

// NextOffsetQuery implements wsql.OffsetsAdapter.
func (unlockedOffsets) NextOffsetQuery(_, consumerGroup string) wsql.Query {
	return wsql.Query{
		Query: `SELECT offset_acked, last_processed_transaction_id FROM ` + offsetsTable + ` WHERE consumer_group = $1`,
		Args:  []any{consumerGroup},
	}
}

// cursorOfMessage is the log place of a message the schema adapter made.
func cursorOfMessage(msg *message.Message) (Cursor, error) {
	var c Cursor
	var err error
	if c.Position, err = strconv.ParseInt(msg.Metadata.Get(metaPosition), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: position: %w", msg.UUID, err)
	}
	if c.TransactionID, err = strconv.ParseUint(msg.Metadata.Get(metaTransaction), 10, 64); err != nil {
		return c, fmt.Errorf("message %s: transaction id: %w", msg.UUID, err)
	}
	return c, nil
}
