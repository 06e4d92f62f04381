package inbox

import (
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strconv"
)

// linkPattern finds the URLs in a plain-text body, to make them links.
var linkPattern = regexp.MustCompile(`https?://[^\s<>"]+`)

// segment is a piece of a body: text, or a link.
type segment struct {
	Text string
	Link bool
}

func segments(body string) []segment {
	var out []segment
	last := 0
	for _, m := range linkPattern.FindAllStringIndex(body, -1) {
		out = append(out, segment{Text: body[last:m[0]]}, segment{Text: body[m[0]:m[1]], Link: true})
		last = m[1]
	}
	return append(out, segment{Text: body[last:]})
}

var page = template.Must(template.New("inbox").Funcs(template.FuncMap{"segments": segments}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Local inbox · shopledger</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1d1d1f}
h1{font-size:1.4rem}article{border:1px solid #ccc;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.meta{color:#555;font-size:.9rem}pre{white-space:pre-wrap;word-break:break-word;font:inherit}
a{color:#0b57d0}
</style></head><body>
<h1>Local inbox</h1>
<p class="meta">Every e-mail the system sent on this machine, newest first. Nothing here left the machine. Reload to see new ones.</p>
{{range .}}<article id="m{{.ID}}"><h2>{{.Subject}}</h2>
<p class="meta">To {{range $i, $t := .To}}{{if $i}}, {{end}}{{$t}}{{end}} · from {{.From}} · {{.At.Format "2006-01-02 15:04:05 MST"}} · <a href="?raw={{.ID}}">source</a></p>
<pre>{{range segments .Body}}{{if .Link}}<a href="{{.Text}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}</pre></article>
{{else}}<p>No messages yet.</p>{{end}}
</body></html>`))

// Handler serves the list of messages, newest first; ?raw=ID shows one
// message's source.
func (in *Inbox) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if raw := r.URL.Query().Get("raw"); raw != "" {
			id, err := strconv.Atoi(raw)
			m, ok := in.Message(id)
			if err != nil || !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(m.Raw)
			return
		}
		msgs := in.Messages()
		slices.Reverse(msgs)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, msgs)
	})
}
