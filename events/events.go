// Package events is the vocabulary of the shopledger log: the envelope every
// fact travels in, the registry of stable type names with their schema
// versions, and the JSON codec that upcasts old payloads on read.
//
// It imports no infrastructure so that the domain, the projections and the
// tests can all speak it.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Payload is the data of one event. Each payload type names itself with a
// stable string; Go type names never reach the log.
type Payload interface {
	EventType() string
}

// Metadata travels with every event and explains where it came from.
type Metadata struct {
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	Source        string `json:"source,omitempty"`
	Actor         string `json:"actor,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	// TraceParent is the W3C traceparent of the span that appended the
	// event, when tracing is on: whoever handles the event later
	// continues that trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// Event is a fact on its way into the log.
type Event struct {
	ID         uuid.UUID
	StreamID   string
	Data       Payload
	Metadata   Metadata
	ShopID     int64
	OccurredAt time.Time
	// DedupeKey is the natural key of the fact; the log stores a key once.
	DedupeKey string
}

// Type is the stable name of the event's payload.
func (e Event) Type() string { return e.Data.EventType() }

// Record is an event as the log stores it.
type Record struct {
	Event
	Position      int64
	TransactionID uint64
	StreamVersion int64
	SchemaVersion int
	RecordedAt    time.Time
	// RawData is the payload exactly as stored (before upcasting).
	RawData json.RawMessage
}

// New builds an event with a fresh UUIDv7 id. Times are normalised to UTC.
func New(stream string, shopID int64, occurredAt time.Time, data Payload) Event {
	return Event{
		ID:         mustV7(),
		StreamID:   stream,
		Data:       data,
		ShopID:     shopID,
		OccurredAt: occurredAt.UTC(),
	}
}

// WithDedupe returns e with its natural key set.
func (e Event) WithDedupe(key string) Event {
	e.DedupeKey = key
	return e
}

// WithMetadata returns e with its metadata set.
func (e Event) WithMetadata(m Metadata) Event {
	e.Metadata = m
	return e
}

func mustV7() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 only fails when the system random source fails; nothing
		// sensible can continue without it.
		panic(fmt.Sprintf("events: uuid v7: %v", err))
	}
	return id
}

// Stream names.
func ShopStream(shopID int64) string       { return fmt.Sprintf("shop-%d", shopID) }
func ListingStream(listingID int64) string { return fmt.Sprintf("listing-%d", listingID) }
func ReceiptStream(receiptID int64) string { return fmt.Sprintf("receipt-%d", receiptID) }
func WebhookStream(webhookID string) string {
	return "etsy-webhook-" + webhookID
}

// ErrUnknownType reports an event type the registry does not know.
var ErrUnknownType = errors.New("unknown event type")
