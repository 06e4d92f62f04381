package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections/engine"
)

// TestSQLLiteralsRoundTrip sends every kind of value a planned write
// carries through PostgreSQL as a literal and reads it back: quotes,
// backslashes and odd text arrive unchanged whatever
// standard_conforming_strings says, and a NUL byte is refused instead of
// cutting the text short.
func TestSQLLiteralsRoundTrip(t *testing.T) {
	db := pgtest.New(t)
	// One connection, so the setting below holds for the queries.
	conn, err := db.DB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := uuid.MustParse("01931d8e-7a3c-7b1e-8f00-0123456789ab")
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	n := int64(-42)
	var nilInt *int64
	text := "plain"
	cases := []struct {
		v    any
		typ  string
		want string
	}{
		{"plain", "text", "plain"},
		{`it's a "quote" and a \backslash\ ; DROP TABLE events; --`, "text", `it's a "quote" and a \backslash\ ; DROP TABLE events; --`},
		{"'; SELECT 1; --", "text", "'; SELECT 1; --"},
		{"ünïcode ✓ \n\t", "text", "ünïcode ✓ \n\t"},
		{"", "text", ""},
		{int64(9007199254740993), "bigint", "9007199254740993"},
		{n, "bigint", "-42"},
		{&n, "bigint", "-42"},
		{nilInt, "bigint", "<null>"},
		{nil, "text", "<null>"},
		{true, "boolean", "true"},
		{false, "boolean", "false"},
		{1.5, "float8", "1.5"},
		{at, "timestamptz", "2026-03-04T04:06:07.123456Z"},
		{&at, "timestamptz", "2026-03-04T04:06:07.123456Z"},
		{(*time.Time)(nil), "timestamptz", "<null>"},
		{&text, "text", "plain"},
		{(*string)(nil), "text", "<null>"},
		{7, "bigint", "7"},
		{id, "uuid", id.String()},
		{events.ReasonRestock, "text", string(events.ReasonRestock)},
		{[]byte{0, 1, 0xfe}, "bytea", `\x0001fe`},
		{[]int64{3, -1, 9007199254740993}, "bigint[]", "{3,-1,9007199254740993}"},
		{[]int64{}, "bigint[]", "{}"},
	}
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.ExecContext(context.Background(), `SET standard_conforming_strings = `+scs); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			lit, err := engine.SQLLiteral(c.v)
			if err != nil {
				t.Fatalf("literal of %#v: %v", c.v, err)
			}
			var got *string
			q := `SELECT (` + lit + `)::` + c.typ + `::text`
			if c.typ == "timestamptz" {
				q = `SELECT to_char((` + lit + `)::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
			}
			if err := conn.QueryRowContext(context.Background(), q).Scan(&got); err != nil {
				t.Fatalf("standard_conforming_strings=%s: %s: %v", scs, q, err)
			}
			g := "<null>"
			if got != nil {
				g = *got
			}
			if g != c.want {
				t.Errorf("standard_conforming_strings=%s: %#v as %s came back as %q, want %q", scs, c.v, lit, g, c.want)
			}
		}
	}
	if _, err := engine.SQLLiteral("a\x00b"); err == nil {
		t.Error("a string with a NUL byte got a literal")
	}
	if _, err := engine.SQLLiteral(struct{}{}); err == nil {
		t.Error("a struct got a literal")
	}
}
