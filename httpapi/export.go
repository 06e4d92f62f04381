package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/shopledger/shopledger/eventstore"
)

// ExportTrailer is the last line of an NDJSON export, wrapped as
// {"trailer": {...}}. A stream cut short has no trailer or one with
// Complete false, so a reader can always tell a whole export from a
// partial one, whatever the HTTP status said when the stream began.
type ExportTrailer struct {
	// Count is how many event lines come before the trailer.
	Count int64 `json:"count"`
	// LastSeq and HeadHash are the seal sequence and hash of the last
	// event line (0 and "" when there is none): where the export reached
	// in the chain, and where to resume (after_seq) if it stopped early.
	LastSeq  int64  `json:"last_seq"`
	HeadHash string `json:"head_hash"`
	// Complete is true only when every event of the range was written.
	Complete bool `json:"complete"`
	// Error says why an incomplete export stopped.
	Error string `json:"error,omitempty"`
}

type exportTrailerLine struct {
	Trailer ExportTrailer `json:"trailer"`
}

// ErrExportIncomplete reports an export that does not hold the whole range
// it was asked for.
var ErrExportIncomplete = errors.New("export incomplete")

// ReadExport reads an NDJSON export from r, calling fn for each event in
// order, and returns its trailer. It fails with ErrExportIncomplete when
// the stream ends without a trailer, when the trailer says the export is
// incomplete, or when the trailer's count, last sequence or head hash do
// not match the events read; this is the check a client of
// /v1/events/export makes before trusting the file.
func ReadExport(r io.Reader, fn func(eventstore.LoggedEvent) error) (ExportTrailer, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var (
		tr      *ExportTrailer
		count   int64
		lastSeq int64
		head    string
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if tr != nil {
			return *tr, fmt.Errorf("read export: a line follows the trailer: %w", ErrExportIncomplete)
		}
		var probe struct {
			Trailer *ExportTrailer `json:"trailer"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return ExportTrailer{}, fmt.Errorf("read export: line %d: %w", count+1, err)
		}
		if probe.Trailer != nil {
			tr = probe.Trailer
			continue
		}
		var ev eventstore.LoggedEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return ExportTrailer{}, fmt.Errorf("read export: line %d: %w", count+1, err)
		}
		count++
		lastSeq, head = ev.Seq, ev.Hash
		if err := fn(ev); err != nil {
			return ExportTrailer{}, err
		}
	}
	if err := sc.Err(); err != nil {
		return ExportTrailer{}, fmt.Errorf("read export: %w", err)
	}
	switch {
	case tr == nil:
		return ExportTrailer{}, fmt.Errorf("read export: no trailer after %d events: %w", count, ErrExportIncomplete)
	case !tr.Complete:
		return *tr, fmt.Errorf("read export: %s: %w", tr.Error, ErrExportIncomplete)
	case tr.Count != count || tr.LastSeq != lastSeq || tr.HeadHash != head:
		return *tr, fmt.Errorf("read export: trailer says %d events up to seq %d, read %d up to seq %d: %w",
			tr.Count, tr.LastSeq, count, lastSeq, ErrExportIncomplete)
	}
	return *tr, nil
}
