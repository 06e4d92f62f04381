package engine

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"

	"github.com/shopledger/shopledger/eventstore"
)

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
func newLogSubscriber(db *sql.DB, group string, cfg RunnerConfig, adapter *eventstore.WindowAdapter, offsets wsql.OffsetsAdapter, logger watermill.LoggerAdapter) (*wsql.Subscriber, error) {
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
