package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// A signed delivery whose event_type holds a NUL (which jsonb cannot
// store) is refused on its own with 422; deliveries beside it succeed.
func TestNULInAPayloadIsRefusedAlone(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	poison := signed(t, secretA, "msg_nul", clock, `{"event_type":"order.paid\u0000","resource_url":"https://openapi.etsy.com/v3/application/shops/1/receipts/2","shop_id":1}`)
	var wg sync.WaitGroup
	codes := make([]int, 9)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := signed(t, secretA, fmt.Sprintf("msg_beside_%d", i), clock, orderBody(1, int64(100+i)))
			if i == 4 {
				d = poison
			}
			codes[i] = r.send(t, d)
		}()
	}
	wg.Wait()
	for i, code := range codes {
		want := http.StatusOK
		if i == 4 {
			want = http.StatusUnprocessableEntity
		}
		if code != want {
			t.Errorf("delivery %d = %d, want %d", i, code, want)
		}
	}
	r.wantStored(t, len(codes)-1, "")
	if got := servicetest.Metric(t, r.reg, "ingest_webhooks_total", map[string]string{"result": "rejected", "reason": "unstorable"}); got != 1 {
		t.Errorf("unstorable rejections = %v, want 1", got)
	}
}

// The committer's own guard: an event PostgreSQL refuses (here a NUL that
// reached it) fails alone with ErrUnstorable, and the other events of its
// group commit are stored.
func TestGroupCommitIsolatesAnEventPostgreSQLRefuses(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	store := eventstore.New(db.DB)
	c, err := ingest.NewCommitter(store, ingest.CommitterConfig{Workers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const n = 8
	// The first commit waits until every other append is queued, so they
	// all share the second one.
	var once sync.Once
	entered := make(chan struct{})
	ingest.SetCommitFaults(c, func() error {
		once.Do(func() {
			close(entered)
			for deadline := time.Now().Add(10 * time.Second); ingest.Queued(c) < n && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
		return nil
	}, nil)
	evidence := func(id, eventType string) events.Event {
		return events.New(events.WebhookStream(id), 1, clock, events.WebhookReceived{
			WebhookID: id, EtsyEventType: eventType, ShopID: 1, RawBody: []byte("{}"), ReceivedAt: clock,
		}).WithDedupe(ingest.WebhookDedupeKey(id))
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := c.Append(ctx, evidence("msg_first", "order.paid")); first <- err }()
	<-entered
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			typ := "order.paid"
			if i == 3 {
				typ = "order\x00paid"
			}
			_, errs[i] = c.Append(ctx, evidence(fmt.Sprintf("msg_%d", i), typ))
		}()
	}
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first append: %v", err)
	}
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, ingest.ErrUnstorable) {
				t.Errorf("append with a NUL = %v, want ErrUnstorable", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("append %d beside it = %v, want stored", i, err)
		}
	}
	var ids []string
	rows, err := db.DB.Query(`SELECT data->>'webhook_id' FROM events ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	want := []string{"msg_0", "msg_1", "msg_2", "msg_4", "msg_5", "msg_6", "msg_7", "msg_first"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// Repeated webhook-signature lines are stored so that the stored evidence
// verifies again from its own headers.
func TestRepeatedSignatureLinesAreStoredVerifiable(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	decoy, err := stdwebhooks.Sign(secretB, "x", clock, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for i, lines := range [][]string{
		{"", decoy},            // the real signature on the first line, a decoy after
		{decoy, ""},            // the real one last
		{decoy + " v2,zz", ""}, // a line holding two entries, then the real one
	} {
		d := signed(t, secretA, fmt.Sprintf("msg_lines_%d", i), clock, orderBody(5, int64(i)))
		req := d.request(t, r.srv.URL+ingest.WebhookPath)
		req.Header.Del(stdwebhooks.HeaderSignature)
		for _, l := range lines {
			if l == "" {
				l = d.sig
			}
			req.Header.Add(stdwebhooks.HeaderSignature, l)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery %d = %d", i, resp.StatusCode)
		}
		_, ev := evidence(t, r.store, d.id)
		h := http.Header{}
		for k, v := range ev.Headers {
			h.Set(k, v)
		}
		if err := stdwebhooks.Verify(h, ev.RawBody, []string{secretA}, time.Unix(ev.Timestamp, 0)); err != nil {
			t.Errorf("delivery %d: stored signature %q does not verify: %v", i, ev.Headers[stdwebhooks.HeaderSignature], err)
		}
		if strings.Contains(ev.Headers[stdwebhooks.HeaderSignature], ", ") {
			t.Errorf("delivery %d: signature lines stored joined with a comma: %q", i, ev.Headers[stdwebhooks.HeaderSignature])
		}
	}
}
