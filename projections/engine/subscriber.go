package engine

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

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

// restartingSubscriber is one projection's subscription as the router
// sees it: it reads through an eventstore subscriber and, when the
// projection fails, closes that subscriber (committing what was applied
// before the failing event), waits RetryInterval and opens a new one that
// starts again at the failing event.
type restartingSubscriber struct {
	runner *Runner
	st     *projectionState

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func (s *restartingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.st.stop = make(chan struct{}, 1)
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		for {
			err := s.consume(ctx, topic, out)
			if err != nil {
				s.runner.logger.Error("projection consumer failed", "projection", s.st.name, "err", err)
			}
			select {
			case <-s.closing:
				return
			case <-ctx.Done():
				return
			default:
			}
			select {
			case <-time.After(s.runner.cfg.RetryInterval):
			case <-s.closing:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// consume forwards one eventstore subscription until the projection fails
// or the subscriber closes.
func (s *restartingSubscriber) consume(ctx context.Context, topic string, out chan<- *message.Message) error {
	cfg := s.runner.cfg
	offsets := flushingOffsets{
		OffsetsAdapter: eventstore.NewOffsetsAdapter(),
		flush:          func(row wsql.Row) (wsql.Row, bool) { return s.runner.flush(s.st, row) },
	}
	inner, err := newLogSubscriber(s.runner.db, s.st.name, cfg, s.st.adapter, offsets, s.runner.wlogger)
	if err != nil {
		return err
	}
	// Drain a stop signal left by the previous subscription.
	select {
	case <-s.st.stop:
	default:
	}
	// The router cancels its handlers' context as soon as it starts
	// closing, and a cancelled subscription rolls its batch back. The inner
	// subscription therefore outlives ctx and is closed here instead,
	// which commits what was applied.
	msgs, err := inner.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		return err
	}
	defer s.closeInner(inner)
	// One select serves both steps: while a message waits to be handed on,
	// in is nil and nothing more is read; otherwise send is nil.
	var pending *message.Message
	for {
		in, send := msgs, chan<- *message.Message(nil)
		if pending != nil {
			in, send = nil, out
		}
		select {
		case m, ok := <-in:
			if !ok {
				return nil
			}
			pending = m
		case send <- pending:
			pending = nil
		case <-s.st.stop:
			return nil
		case <-s.closing:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// closeInner waits for the event being applied, keeps further events from
// being applied and closes inner, which commits the applied events with
// the group's offset.
func (s *restartingSubscriber) closeInner(inner *wsql.Subscriber) {
	s.st.mu.Lock()
	s.st.closing = true
	s.st.mu.Unlock()
	if err := inner.Close(); err != nil {
		s.runner.logger.Error("close projection consumer", "projection", s.st.name, "err", err)
	}
	s.st.mu.Lock()
	s.st.closing = false
	s.st.tx, s.st.savepoint = nil, false
	if len(s.st.pending) > 0 {
		s.st.pending = nil
		s.st.warm = false
	}
	s.st.mu.Unlock()
}

func (s *restartingSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
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
