package systemtest_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/service/servicetest"
)

// traceReceiver is a local OTLP/HTTP collector: it keeps every span
// posted to /v1/traces.
type traceReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service, name, traceID string
	kind                   tracepb.Span_SpanKind
}

func newTraceReceiver(t *testing.T) *traceReceiver {
	t.Helper()
	r := &traceReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.Error(w, "not here", http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var msg collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					r.spans = append(r.spans, receivedSpan{service: service, name: sp.Name, traceID: hex.EncodeToString(sp.TraceId), kind: sp.Kind})
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// traces groups the spans received so far by trace id.
func (r *traceReceiver) traces() map[string][]receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]receivedSpan{}
	for _, s := range r.spans {
		out[s.traceID] = append(out[s.traceID], s)
	}
	return out
}

// TestTracesFollowAWebhook sends the simulator's webhooks to ingest and
// has ingest and projector export traces to a local OTLP/HTTP receiver:
// one trace must hold the webhook's HTTP request and its append at
// ingest, the fetcher following it with its call to Etsy, and the
// projector applying what the fetcher appended.
func TestTracesFollowAWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ingest, projector and the simulator")
	}
	bin := buildBinaries(t, "etsysim", "ingest", "projector", "ledger")
	rcv := newTraceReceiver(t)
	ingestAddr := servicetest.FreeAddr(t)
	d := newDeployment(t, bin, deploymentConfig{webhookURL: "http://" + ingestAddr + "/webhooks/etsy"})
	ctx := context.Background()
	traced := map[string]string{"SHOPLEDGER_OTLP_ENDPOINT": rcv.URL}
	d.startIngest("ingest", merge(traced, map[string]string{"SHOPLEDGER_INGEST_ADDR": ingestAddr}))
	shop := d.shopIDs[0]
	d.ledger("shops", "connect", "--sim-shop", strconv.FormatInt(shop, 10))
	d.startProjector("projector", traced)

	ctl := &etsysim.Control{BaseURL: d.simURL}
	if _, err := ctl.GenerateCatalogue(ctx, shop, 2); err != nil {
		t.Fatal(err)
	}
	// What one webhook's trace must hold, by service and span.
	want := []string{
		"shopledger-ingest: POST /webhooks/etsy (server)",
		"shopledger-ingest: webhook append",
		"shopledger-ingest: fetcher follow",
		"shopledger-ingest: HTTP GET (client)",
		"shopledger-projector: project products",
	}
	var best []string
	converge(t, "one trace from a webhook's request to its projection", 90*time.Second, func(context.Context) (string, error) {
		for id, spans := range rcv.traces() {
			have := map[string]bool{}
			for _, s := range spans {
				name := s.service + ": " + s.name
				switch s.kind {
				case tracepb.Span_SPAN_KIND_SERVER:
					name += " (server)"
				case tracepb.Span_SPAN_KIND_CLIENT:
					// "GET" or "HTTP GET", by the semantic conventions' version.
					f := strings.Fields(s.name)
					name = s.service + ": HTTP " + f[len(f)-1] + " (client)"
				}
				have[name] = true
			}
			var missing []string
			for _, w := range want {
				if !have[w] {
					missing = append(missing, w)
				}
			}
			if len(missing) == 0 {
				names := make([]string, 0, len(have))
				for n := range have {
					names = append(names, n)
				}
				sort.Strings(names)
				t.Logf("trace %s: %d spans: %s", id, len(spans), strings.Join(names, "; "))
				return "", nil
			}
			if best == nil || len(missing) < len(best) {
				best = missing
			}
		}
		return fmt.Sprintf("%d traces received; the closest lacks %v", len(rcv.traces()), best), nil
	})
}
