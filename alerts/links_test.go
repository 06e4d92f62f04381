package alerts_test

import (
	"testing"

	"github.com/shopledger/shopledger/alerts"
)

// A message links to its alert's page; a test alert, which has none, to
// the channels page where its result shows; without a base, to nothing.
func TestMessageLinks(t *testing.T) {
	l := alerts.Links{Base: "https://ledger.example.com/"}
	cases := []struct {
		links alerts.Links
		msg   alerts.Message
		want  string
	}{
		{l, alerts.Message{AlertID: "a1"}, "https://ledger.example.com/alerts/a1"},
		{l, alerts.Message{AlertID: "t1", Test: true}, "https://ledger.example.com/channels"},
		{alerts.Links{}, alerts.Message{AlertID: "a1"}, ""},
		{alerts.Links{}, alerts.Message{AlertID: "t1", Test: true}, ""},
	}
	for _, c := range cases {
		if got := c.links.Of(c.msg); got != c.want {
			t.Errorf("Links{%q}.Of(%+v) = %q, want %q", c.links.Base, c.msg, got, c.want)
		}
	}
}
