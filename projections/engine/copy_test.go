package engine_test

import (
	"context"
	"database/sql/driver"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections/engine"
)

// status stands for the named string types row structs use.
type status string

// jsonList stands for the jsonb columns a row stores through a Valuer.
type jsonList struct{ v string }

func (j jsonList) Value() (driver.Value, error) { return j.v, nil }

const copyProbeDDL = `CREATE TABLE %s (
	b bigint, i integer, s smallint, t text, v varchar(40), j jsonb, ts timestamptz, d date,
	u uuid, f boolean, nb bigint, nt timestamptz, ns text, st text, jl jsonb)`

var copyProbeColumns = []string{"b", "i", "s", "t", "v", "j", "ts", "d", "u", "f", "nb", "nt", "ns", "st", "jl"}

func createCopyProbe(t *testing.T, db *pgtest.Database) {
	t.Helper()
	for _, name := range []string{"copy_probe", "copy_probe" + engine.ShadowSuffix} {
		if _, err := db.DB.Exec(strings.Replace(copyProbeDDL, "%s", name, 1)); err != nil {
			t.Fatal(err)
		}
	}
}

// The rebuild's own binary COPY encoding reads back as the values went in,
// for every column type the read models use, NULLs included.
func TestRebuildCopyRoundTrip(t *testing.T) {
	db := pgtest.New(t)
	createCopyProbe(t, db)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		b      int64
		i      int
		s      int64
		t      string
		v      string
		j      string
		ts     time.Time
		d      time.Time
		u      uuid.UUID
		f      bool
		nb     *int64
		nt     *time.Time
		ns     *string
		st     status
		jl     jsonList
		wantTS time.Time
		wantD  string
	}
	seven := int64(-7)
	later := time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
	text := "it's a \"quote\", a back\\slash, a tab\t, a newline\n, ünïcode ✓"
	rows := []row{
		{b: 1 << 62, i: -2147483648, s: 32767, t: text, v: "short", j: `{"a": [1, "x"], "b": null}`,
			ts: time.Date(2026, 11, 29, 10, 11, 12, 123_456_789, time.UTC), d: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
			u: uuid.MustParse("0190f6a0-1234-7abc-8def-0123456789ab"), f: true, nb: &seven, nt: &later, ns: &text,
			st: "paid", jl: jsonList{`["k1", "k2"]`},
			wantTS: time.Date(2026, 11, 29, 10, 11, 12, 123_456_000, time.UTC), wantD: "2026-02-28"},
		// Before 2000 and in another zone: the instant is kept, the date
		// is the calendar date where the time is.
		{b: -1, i: 0, s: -1, t: "", v: "", j: `[]`,
			ts: time.Date(1970, 1, 1, 0, 59, 0, 999, berlin), d: time.Date(1999, 12, 31, 23, 30, 0, 0, berlin),
			st: "", jl: jsonList{`[]`},
			wantTS: time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC), wantD: "1999-12-31"},
	}
	var in [][]any
	for i := range rows {
		r := &rows[i]
		in = append(in, []any{&r.b, &r.i, &r.s, &r.t, &r.v, &r.j, &r.ts, &r.d, &r.u, &r.f, &r.nb, &r.nt, &r.ns, &r.st, r.jl})
	}
	n, err := engine.CopyRows(context.Background(), db.Pool, "copy_probe", copyProbeColumns, in)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(rows)) {
		t.Fatalf("copied %d rows, want %d", n, len(rows))
	}
	got, err := db.DB.Query(`SELECT b, i, s, t, v, j::text, ts, d::text, u, f, nb, nt, ns, st, jl::text
		FROM copy_probe_rebuild ORDER BY b DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for k := 0; got.Next(); k++ {
		want := rows[k]
		var r row
		var d, jl, st string
		if err := got.Scan(&r.b, &r.i, &r.s, &r.t, &r.v, &r.j, &r.ts, &d, &r.u, &r.f, &r.nb, &r.nt, &r.ns, &st, &jl); err != nil {
			t.Fatal(err)
		}
		if r.b != want.b || r.i != want.i || r.s != want.s || r.t != want.t || r.v != want.v || r.u != want.u || r.f != want.f {
			t.Errorf("row %d: scalars %+v, want %+v", k, r, want)
		}
		wantJ := map[string]string{`{"a": [1, "x"], "b": null}`: `{"a": [1, "x"], "b": null}`, `[]`: `[]`}[want.j]
		if r.j != wantJ || jl != want.jl.v || st != string(want.st) {
			t.Errorf("row %d: json %q %q, status %q", k, r.j, jl, st)
		}
		if !r.ts.Equal(want.wantTS) || d != want.wantD {
			t.Errorf("row %d: timestamp %s, date %s; want %s, %s", k, r.ts.UTC(), d, want.wantTS, want.wantD)
		}
		if (r.nb == nil) != (want.nb == nil) || (r.nb != nil && *r.nb != *want.nb) {
			t.Errorf("row %d: nullable bigint %v, want %v", k, r.nb, want.nb)
		}
		if (r.nt == nil) != (want.nt == nil) || (r.nt != nil && !r.nt.Equal(*want.nt)) {
			t.Errorf("row %d: nullable timestamp %v, want %v", k, r.nt, want.nt)
		}
		if (r.ns == nil) != (want.ns == nil) || (r.ns != nil && *r.ns != *want.ns) {
			t.Errorf("row %d: nullable text %v, want %v", k, r.ns, want.ns)
		}
	}
	if err := got.Err(); err != nil {
		t.Fatal(err)
	}
}

// A value the column cannot hold is refused with the column's name before
// anything is sent, and so is a row the server refuses.
func TestRebuildCopyRefusesBadValues(t *testing.T) {
	db := pgtest.New(t)
	createCopyProbe(t, db)
	if _, err := db.DB.Exec(`ALTER TABLE copy_probe_rebuild ALTER COLUMN t SET NOT NULL`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big, nul, fl := int64(1)<<40, "a\x00b", 1.5
	cases := []struct {
		name    string
		columns []string
		row     []any
		want    string
	}{
		{"integer overflow", []string{"i"}, []any{&big}, "column i: 1099511627776 is out of range for integer"},
		{"NUL in text", []string{"t"}, []any{&nul}, "column t: text contains a NUL byte"},
		{"float into bigint", []string{"b"}, []any{&fl}, "column b: no binary COPY encoding for *float64"},
		{"string into bigint", []string{"b"}, []any{&nul}, "column b: no binary COPY encoding for a string"},
		{"too few values", []string{"b", "i"}, []any{&big}, "row has 1 values for 2 columns"},
		{"unknown column", []string{"nope"}, []any{&big}, "no column nope"},
		{"server refuses NULL", []string{"t"}, []any{(*string)(nil)}, "null value in column"},
	}
	for _, c := range cases {
		_, err := engine.CopyRows(ctx, db.Pool, "copy_probe", c.columns, [][]any{c.row})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", c.name, err, c.want)
		}
	}
	var n int
	if err := db.DB.QueryRow(`SELECT count(*) FROM copy_probe_rebuild`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows were copied from refused rows", n)
	}
}
