package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

type openAPIDoc struct {
	OpenAPI string                                 `json:"openapi"`
	Paths   map[string]map[string]openAPIOperation `json:"paths"`
}

type openAPIOperation struct {
	Parameters []struct {
		Name   string `json:"name"`
		In     string `json:"in"`
		Schema struct {
			Enum []string `json:"enum"`
		} `json:"schema"`
	} `json:"parameters"`
	Responses map[string]struct {
		Ref     string `json:"$ref"`
		Content map[string]struct {
			Example json.RawMessage `json:"example"`
		} `json:"content"`
	} `json:"responses"`
}

// pointerEscape escapes a JSON pointer token.
func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func parseJSONValue(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// shapeDiff lists where two JSON values have different object keys, so an
// example that drifts from the real response (a renamed, added or removed
// field at any depth) is caught. null matches anything: optional values
// are null in one and set in the other.
func shapeDiff(at string, example, real any) []string {
	if example == nil || real == nil {
		return nil
	}
	switch ex := example.(type) {
	case map[string]any:
		re, ok := real.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: example is an object, response %T", at, real)}
		}
		var out []string
		for k := range ex {
			if _, ok := re[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: in the example, not in the response", at, k))
			}
		}
		for k := range re {
			if _, ok := ex[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: in the response, not in the example", at, k))
			}
		}
		// data is the stored payload of whatever event type: its keys
		// differ from one event to the next by design.
		for k, v := range ex {
			if k == "data" {
				continue
			}
			out = append(out, shapeDiff(at+"."+k, v, re[k])...)
		}
		sort.Strings(out)
		return out
	case []any:
		re, ok := real.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: example is an array, response %T", at, real)}
		}
		if len(ex) == 0 || len(re) == 0 {
			return nil
		}
		return shapeDiff(at+"[0]", ex[0], re[0])
	default:
		if _, isObj := real.(map[string]any); isObj {
			return []string{fmt.Sprintf("%s: example is a scalar, response an object", at)}
		}
		return nil
	}
}

// The OpenAPI document is kept true by this test: every route the router
// serves is documented and nothing else is; every documented success
// response is requested for real and validated against its schema (whose
// objects allow no undocumented property); every example
// validates too and has the keys of the real response.
func TestOpenAPIDocumentsEveryRouteAndExamplesMatch(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 60, nil)
	raw := httpapi.OpenAPI()
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	served := do(t, h, call{path: "/openapi.json"})
	if !bytes.Equal(served.Body.Bytes(), raw) {
		t.Error("/openapi.json does not serve the embedded document")
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("openapi.json", parseJSONValue(t, raw)); err != nil {
		t.Fatal(err)
	}
	compile := func(ptr string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile("openapi.json#" + ptr)
		if err != nil {
			t.Fatalf("compile %s: %v", ptr, err)
		}
		return s
	}

	routes, err := httpapi.Routes(h)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	for _, r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json documents %s, which the router does not serve", d)
		}
	}

	problem := compile("/components/schemas/Problem")
	for _, r := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		o, ok := doc.Paths[pattern][strings.ToLower(method)]
		if !ok || pattern == "/openapi.json" {
			continue
		}
		t.Run(r, func(t *testing.T) {
			path, ok := routeCall(t, w, 1, pattern)
			if !ok {
				t.Fatalf("cannot fill %s", pattern)
			}
			c := call{method: method, path: path, token: w.tokens[1].auditor}
			if b, ok := writeBody(method, pattern); ok {
				c.token, c.body = w.tokens[1].seller, b
			}
			got := do(t, h, c)
			var status string
			for s := range o.Responses {
				if s[0] == '2' {
					status = s
				}
			}
			if fmt.Sprint(got.Code) != status {
				t.Fatalf("%s %s = %d, documented success %s; body %s", method, path, got.Code, status, got.Body)
			}
			for media, content := range o.Responses[status].Content {
				if media == "text/csv" {
					continue // TestCSVMatchesJSON holds CSV to the JSON answer
				}
				ptr := "/paths/" + pointerEscape(pattern) + "/" + strings.ToLower(method) + "/responses/" + status + "/content/" + pointerEscape(media) + "/schema"
				schema := compile(ptr)
				var bodies []any
				if media == "application/x-ndjson" {
					sc := bufio.NewScanner(bytes.NewReader(got.Body.Bytes()))
					sc.Buffer(make([]byte, 1<<20), 1<<20)
					for sc.Scan() {
						bodies = append(bodies, parseJSONValue(t, sc.Bytes()))
					}
				} else {
					bodies = append(bodies, parseJSONValue(t, got.Body.Bytes()))
				}
				if len(bodies) == 0 {
					t.Fatal("no response body to check")
				}
				for _, b := range bodies {
					if err := schema.Validate(b); err != nil {
						t.Errorf("response does not match its schema: %#v", err)
					}
				}
				if len(content.Example) == 0 {
					t.Fatalf("%s %s has no example", r, media)
				}
				example := parseJSONValue(t, content.Example)
				if err := schema.Validate(example); err != nil {
					t.Errorf("example does not match its schema: %#v", err)
				}
				for _, d := range shapeDiff("$", example, bodies[0]) {
					t.Errorf("example vs response: %s", d)
				}
			}
		})
	}

	// Problems have the documented shape too.
	for _, c := range []call{
		{path: "/v1/products/1", token: w.tokens[1].seller},
		{path: "/v1/products?limit=zero", token: w.tokens[1].seller},
		{path: "/v1/shops"},
		{path: "/v1/events", token: w.tokens[1].seller},
	} {
		got := do(t, h, c)
		if err := problem.Validate(parseJSONValue(t, got.Body.Bytes())); err != nil {
			t.Errorf("%s: problem does not match its schema: %#v", c.path, err)
		}
	}
}

// The documented values of the enumerated filters are the ones the API
// accepts, read from the same sources of truth, and every example of a
// variant key has the form the ledger uses (sku:…, listing:…), never a
// bare SKU, which names no variant.
func TestOpenAPIEnumsAndVariantKeysAreTrue(t *testing.T) {
	raw := httpapi.OpenAPI()
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, param string
		accepted    []string
	}{
		{"/v1/products", "state", etsy.ListingStates()},
		{"/v1/sales", "status", projections.SaleStatuses()},
		{"/v1/alerts", "status", []string{alerts.StatusOpen, alerts.StatusCleared}},
		{"/v1/events", "type", events.Types()},
		{"/v1/events/export", "type", events.Types()},
	} {
		var documented []string
		found := false
		for _, p := range doc.Paths[tc.path]["get"].Parameters {
			if p.Name == tc.param && p.In == "query" {
				documented, found = p.Schema.Enum, true
			}
		}
		if !found {
			t.Errorf("GET %s: %s is not documented", tc.path, tc.param)
			continue
		}
		if diff := cmp.Diff(tc.accepted, documented); diff != "" {
			t.Errorf("GET %s %s values (-accepted +documented):\n%s", tc.path, tc.param, diff)
		}
	}
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if k == "variant_key" {
					if s, ok := child.(string); ok && s != "" && !strings.HasPrefix(s, "sku:") && !strings.HasPrefix(s, "listing:") {
						t.Errorf("%s.variant_key example %q is not a variant key", at, s)
					}
				}
				walk(at+"."+k, child)
			}
		case []any:
			for i, child := range x {
				walk(fmt.Sprintf("%s[%d]", at, i), child)
			}
		}
	}
	var all any
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	walk("$", all)
}
