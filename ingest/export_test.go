package ingest

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/shopledger/shopledger/events"
)

// Test-only access to the fault hooks and the payload parser, for the
// black-box tests in package ingest_test.

// SetCommitFaults makes c fail before its COMMIT (before) or report a
// failure after a successful COMMIT (after), as if the process died before
// answering. nil clears a hook. Set them before the first Append.
func SetCommitFaults(c *Committer, before, after func() error) {
	c.beforeCommit = before
	c.afterCommit = after
}

// CountParses makes h call onParse each time it decodes a body.
func CountParses(h *WebhookHandler, onParse func()) {
	inner := h.parse
	h.parse = func(b []byte) payloadFields {
		onParse()
		return inner(b)
	}
}

// SetDecode makes f decode the log's messages with decode, as an older
// binary that cannot read some evidence would.
func SetDecode(f *Fetcher, decode func(*message.Message) (events.Record, error)) {
	f.decode = decode
}
