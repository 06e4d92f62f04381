package httpapi

import (
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// Every string the API passes to PostgreSQL must be text PostgreSQL can
// hold: valid UTF-8 without NUL. The checks here run before any handler,
// so that bad bytes are a 400 naming the parameter instead of a database
// error.

// textProblem says what is wrong with s as text, or "" when nothing is.
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

// printableName is a parameter name fit for a problem document: invalid
// bytes become U+FFFD, so the name still shows where the problem is.
func printableName(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// checkQuery parses the raw query strictly. url.Values parsing drops pairs
// it cannot decode, which would silently turn a filter off; here every
// pair must decode and be text.
func checkQuery(raw string) error {
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return badInput(printableName(rawKey), "bad percent-encoding in the parameter name")
		}
		if strings.Contains(rawKey, ";") {
			return badInput(printableName(key), "separate query parameters with &, not ;")
		}
		if p := textProblem(key); p != "" {
			return badInput(printableName(key), "parameter name %s", p)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return badInput(key, "bad percent-encoding")
		}
		if strings.Contains(rawValue, ";") {
			return badInput(key, "separate query parameters with &, not ;")
		}
		if p := textProblem(value); p != "" {
			return badInput(key, "%s", p)
		}
	}
	return nil
}

// checkInput rejects query parameters and path parameters that are not
// text. It runs after routing, so that a bad path segment is named by its
// route parameter ({variantKey}, {shopID}).
func checkInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := checkQuery(r.URL.RawQuery)
		if rc := chi.RouteContext(r.Context()); err == nil && rc != nil {
			for i, key := range rc.URLParams.Keys {
				if key == "*" {
					continue
				}
				value := rc.URLParams.Values[i]
				if r.URL.RawPath != "" {
					// chi routed on the escaped path: the parameter is
					// still percent-encoded.
					if value, err = url.PathUnescape(value); err != nil {
						err = badInput(key, "bad percent-encoding")
						break
					}
				}
				if p := textProblem(value); p != "" {
					err = badInput(key, "%s", p)
					break
				}
			}
		}
		if err != nil {
			writeInputProblem(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeInputProblem answers an input error outside the handlers (which
// have the server's errorWriter): input errors are never internal, so
// nothing needs logging.
func writeInputProblem(w http.ResponseWriter, r *http.Request, err error) {
	p, _ := problemFor(err)
	p.Instance = printableName(r.URL.Path)
	writeProblem(w, p)
}

// CanonicalPaths answers a path with empty, "." or ".." segments with a
// 400 problem instead of passing it on. http.ServeMux would otherwise
// redirect it with an HTML body, and a client that follows the redirect
// reaches another resource than the one it named. Percent-encoded slashes
// stay inside their segment, so a variant key such as "a/../b", sent as
// a%2F..%2Fb, is not affected.
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		escaped := r.URL.EscapedPath()
		if escaped != "" && escaped != "/" {
			segments := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
			for i, seg := range segments {
				last := i == len(segments)-1
				dec, err := url.PathUnescape(seg)
				if err != nil {
					dec = seg
				}
				if (seg == "" && !last) || dec == "." || dec == ".." {
					writeInputProblem(w, r, badInput("path", "empty, . and .. path segments are not allowed; send the path as documented"))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders keeps browsers from sniffing any answer into another
// type (a CSV or NDJSON export opened as HTML, say).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// noStore keeps every answer under /v1 (tenant data, or errors about it)
// out of shared and private caches.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// probeMethods are the methods a 405's Allow header can name.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodNotAllowed answers 405 with the methods the path does allow, or
// 404 when no method would find anything there (chi also calls it for
// methods it does not know, whatever the path).
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range probeMethods {
		probe := m
		if m == http.MethodHead {
			probe = http.MethodGet // HEAD is served wherever GET is
		}
		if s.router.Find(chi.NewRouteContext(), probe, path) != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		s.errs.write(w, r, ErrNotFound)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeProblem(w, Problem{Type: problemBase + "method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed,
		Detail: "this resource allows " + strings.Join(allowed, ", "), Instance: printableName(r.URL.Path)})
}

// bodyTimeout bounds how long a write may take to send its body. Bodies
// here are a few bytes; a body that has not arrived by then is shorter
// than its Content-Length or deliberately slow, and holding the
// connection longer helps no one.
const bodyTimeout = 2 * time.Second

// readJSONBody reads a request body of at most limit bytes that must be
// JSON. The answers: 415 for another declared type, 413 for a larger
// body (declared or sent), 400 for a body that ends before its
// Content-Length or does not arrive within bodyTimeout.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, inputStatus(http.StatusUnsupportedMediaType, "Content-Type", "send application/json")
		}
	}
	if r.ContentLength > limit {
		return nil, inputStatus(http.StatusRequestEntityTooLarge, "Content-Length", "the body may hold at most %d bytes", limit)
	}
	// The server's own read timeout is far longer (it suits every
	// handler); this read needs only a little time.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return body, nil
	case errors.As(err, &tooLarge):
		return nil, inputStatus(http.StatusRequestEntityTooLarge, "body", "the body may hold at most %d bytes", limit)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, badInput("Content-Length", "the body ended before Content-Length bytes arrived")
	case errors.As(err, &netErr) && netErr.Timeout():
		return nil, badInput("Content-Length", "the body did not arrive within %s: it is shorter than its Content-Length or sent too slowly", bodyTimeout)
	default:
		// Malformed chunking, a reset connection: the client's side of
		// the exchange failed, not ours.
		return nil, badInput("body", "the body could not be read")
	}
}

// CloseUnreadBodies closes the connection after any answer given before
// the request's body was read to its end (a 401, a 404, a 415). net/http
// would otherwise read the rest of the body before answering, to keep the
// connection open, and a body shorter than its Content-Length would hold
// the answer until the server's read timeout.
func CloseUnreadBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		body := &eofBody{ReadCloser: r.Body}
		r.Body = body
		next.ServeHTTP(&closeIfUnread{ResponseWriter: w, body: body}, r)
	})
}

// eofBody notes whether a request body was read to its end.
type eofBody struct {
	io.ReadCloser
	eof bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// closeIfUnread asks for the connection to close when the answer starts
// before its request's body has been read.
type closeIfUnread struct {
	http.ResponseWriter
	body        *eofBody
	wroteHeader bool
}

func (w *closeIfUnread) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if !w.body.eof {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeIfUnread) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes).
func (w *closeIfUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }
