package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/httpapi"
)

// One alert's answer lists every delivery attempt with its time, result
// and the kind of failure, never the raw error text (which can hold a
// webhook URL); lists leave the history out.
func TestAlertShowsEveryDeliveryAttempt(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 57, nil)
	alertID := uuid.MustParse(w.alertOf(11))
	delivery := uuid.New()
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	errs := []string{
		`post: Post "https://hooks.slack.com/services/T000/B000/XXXXSECRET": dial tcp: lookup hooks.slack.com: no such host`,
		"receiver answered 503 Service Unavailable",
		"",
	}
	if _, err := w.db.DB.Exec(`INSERT INTO alert_deliveries (delivery_id, alert_id, shop_id, kind, target, message, status, attempts,
		enqueued_at, last_attempt_at, last_error, finished_at)
		VALUES ($1, $2, 11, 'slack', 'https://hooks.slack.com/services/T000/B000/XXXXSECRET', '{}', 'delivered', 3, $3, $4, '', $4)`,
		delivery, alertID, at, at.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		start := at.Add(time.Duration(i) * time.Minute)
		if _, err := w.db.DB.Exec(`INSERT INTO alert_delivery_attempts (delivery_id, attempt, shop_id, started_at, finished_at, error)
			VALUES ($1, $2, 11, $3, $4, $5)`, delivery, i+1, start, start.Add(time.Second), e); err != nil {
			t.Fatal(err)
		}
	}
	got := do(t, h, call{path: "/v1/alerts/" + alertID.String(), token: w.tokens[1].seller})
	if got.Code != http.StatusOK {
		t.Fatalf("GET alert = %d %s", got.Code, got.Body)
	}
	if strings.Contains(got.Body.String(), "SECRET") || strings.Contains(got.Body.String(), "hooks.slack.com") {
		t.Errorf("the answer shows the channel's URL: %s", got.Body)
	}
	var a httpapi.Alert
	if err := json.Unmarshal(got.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	var history []httpapi.AlertAttempt
	for _, d := range a.Deliveries {
		if d.Kind == "slack" {
			history = d.History
		}
	}
	want := []httpapi.AlertAttempt{
		{Attempt: 1, StartedAt: at, FinishedAt: at.Add(time.Second), Result: "failed", Error: "the receiver's host name does not resolve"},
		{Attempt: 2, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute + time.Second), Result: "failed", Error: "the receiver answered 503 Service Unavailable"},
		{Attempt: 3, StartedAt: at.Add(2 * time.Minute), FinishedAt: at.Add(2*time.Minute + time.Second), Result: "delivered", Error: ""},
	}
	if diff := cmp.Diff(want, history); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	list := do(t, h, call{path: "/v1/alerts?shop_id=11", token: w.tokens[1].seller})
	if strings.Contains(list.Body.String(), `"history"`) {
		t.Errorf("the alert list carries attempt histories: %s", list.Body)
	}
}
