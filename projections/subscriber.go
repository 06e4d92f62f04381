package projections

import (
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"

	"github.com/shopledger/shopledger/eventstore"
)

// logAdapter reads the log for a consumer group like
// eventstore.SchemaAdapter (same columns, same messages, same gap rule),
// with a select that stays correct and fast on a long log:
//
//   - it orders by the table's transaction_id, not by the selected
//     transaction_id::text, which sorts "1000" before "999" and so, once
//     transaction ids gain a digit, delivers a newer transaction first and
//     skips the older one for good;
//   - it compares (transaction_id, position) as a row, which the
//     (transaction_id, position) index answers in order, reading one
//     batch instead of every event after the offset.
type logAdapter struct {
	eventstore.SchemaAdapter
	batchSize int
}

// SelectQuery implements wsql.SchemaAdapter.
func (a logAdapter) SelectQuery(_ string, consumerGroup string, offsets wsql.OffsetsAdapter) wsql.Query {
	next := offsets.NextOffsetQuery(eventstore.Topic, consumerGroup)
	q := `WITH last_processed AS (` + next.Query + `)
	SELECT ` + eventstore.RecordColumns + ` FROM events, last_processed
	WHERE (events.transaction_id, events.position) > (last_processed.last_processed_transaction_id, coalesce(last_processed.offset_acked, 0))
	  AND events.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY events.transaction_id, events.position
	LIMIT ` + strconv.Itoa(a.batchSize)
	return wsql.Query{Query: q, Args: next.Args}
}

// newLogSubscriber is eventstore.NewSubscriber with logAdapter.
func newLogSubscriber(db *sql.DB, group string, cfg RunnerConfig, logger watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	deadline := cfg.AckDeadline
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  group,
		SchemaAdapter:  logAdapter{batchSize: cfg.BatchSize},
		OffsetsAdapter: eventstore.NewOffsetsAdapter(),
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
