package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// cutLog is an EventLog whose reads fail from the (ok+1)th on, the way a
// query dies in the middle of an export: on the real database, a query
// that overruns its time and is cancelled on the server. The time is its
// own, so the reads before it are never cut by a slow machine.
type cutLog struct {
	httpapi.EventLog
	db    *sql.DB
	ok    int32
	calls atomic.Int32
}

func (c *cutLog) ListEvents(ctx context.Context, f projections.EventFilter) ([]eventstore.LoggedEvent, error) {
	if c.calls.Add(1) > c.ok {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.db.ExecContext(ctx, `SELECT pg_sleep(60) /* export-cut-test */`)
		return nil, err
	}
	return c.EventLog.ListEvents(ctx, f)
}

func readAll(t *testing.T, body []byte) ([]eventstore.LoggedEvent, httpapi.ExportTrailer, error) {
	t.Helper()
	var evs []eventstore.LoggedEvent
	tr, err := httpapi.ReadExport(bytes.NewReader(body), func(ev eventstore.LoggedEvent) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, tr, err
}

// An export that a database error cuts short still ends with a trailer,
// which says it is incomplete and where to resume; resuming there gives
// exactly the whole export. A stream cut without a trailer, or with lines
// missing, fails the client-side check too.
func TestExportTrailerMakesATruncatedExportDetectable(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 54, func(c *httpapi.Config) { c.ExportBatch = 5 })
	tok := w.tokens[1].auditor
	whole := do(t, h, call{path: "/v1/events/export", token: tok})
	all, tr, err := readAll(t, whole.Body.Bytes())
	if err != nil || !tr.Complete || tr.Count != int64(len(all)) || len(all) < 20 {
		t.Fatalf("whole export: %d events, trailer %+v, err %v", len(all), tr, err)
	}
	if tr.LastSeq != all[len(all)-1].Seq || tr.HeadHash != all[len(all)-1].Hash {
		t.Errorf("trailer %+v does not name the last event (seq %d)", tr, all[len(all)-1].Seq)
	}

	cut, _ := newAPI(t, w.db, apiOpts{mod: func(c *httpapi.Config) {
		c.ExportBatch = 5
		c.Data.Events = &cutLog{EventLog: c.Data.Events, db: w.db.DB, ok: 2}
	}})
	// Over a real connection: the status and the first batches are on the
	// wire before the cut.
	srv := httptest.NewServer(cut)
	defer srv.Close()
	got := send(t, srv.URL, rawRequest{target: "/v1/events/export", token: tok})
	if got.status != http.StatusOK {
		t.Fatalf("cut export = %d, want 200 (the error comes after the stream began): %s", got.status, got.body)
	}
	part, tr, err := readAll(t, got.body)
	if !errors.Is(err, httpapi.ErrExportIncomplete) {
		t.Fatalf("ReadExport of a cut export: %v, want ErrExportIncomplete", err)
	}
	if tr.Complete || tr.Count != 10 || len(part) != 10 || tr.LastSeq != part[9].Seq || !strings.Contains(tr.Error, fmt.Sprintf("after_seq=%d", tr.LastSeq)) {
		t.Errorf("cut export: %d events, trailer %+v; want 10 events and an incomplete trailer naming where to resume", len(part), tr)
	}
	rest, tr2, err := readAll(t, do(t, h, call{path: fmt.Sprintf("/v1/events/export?after_seq=%d", tr.LastSeq), token: tok}).Body.Bytes())
	if err != nil || !tr2.Complete {
		t.Fatalf("resumed export: %+v, %v", tr2, err)
	}
	if diff := cmp.Diff(ids(all), ids(append(part, rest...))); diff != "" {
		t.Errorf("cut export plus its resumption (-whole +joined):\n%s", diff)
	}

	// What a client sees when the connection itself breaks.
	lines := bytes.SplitAfter(whole.Body.Bytes(), []byte("\n"))
	withoutTrailer := bytes.Join(lines[:len(lines)-2], nil)
	midLine := whole.Body.Bytes()[:len(withoutTrailer)-7]
	missingLine := append(bytes.Join(lines[:3], nil), bytes.Join(lines[4:], nil)...)
	for name, body := range map[string][]byte{
		"no trailer":           withoutTrailer,
		"cut in a line":        midLine,
		"a line missing":       missingLine,
		"nothing at all":       nil,
		"a line after the end": append(bytes.Clone(whole.Body.Bytes()), lines[0]...),
	} {
		if _, _, err := readAll(t, body); err == nil {
			t.Errorf("%s: ReadExport accepted it", name)
		}
	}
}
