package projections

import (
	"strings"
	"sync"
)

// writeKind is what a planned statement does to a read-model table.
type writeKind int

const (
	kindInsert writeKind = iota + 1
	kindUpsert
)

type tableWrite struct {
	t    table
	kind writeKind
}

var (
	knownWritesOnce sync.Once
	knownWrites     map[string]tableWrite
)

// writeOf recognises the one-row inserts and full-row upserts that
// planners build from the table descriptions.
func writeOf(s stmt) (tableWrite, bool) {
	knownWritesOnce.Do(func() {
		knownWrites = map[string]tableWrite{}
		for _, t := range tablesByName {
			knownWrites[t.upsertSQL()] = tableWrite{t, kindUpsert}
			knownWrites[t.insertSQL()] = tableWrite{t, kindInsert}
		}
	})
	if s.raw {
		return tableWrite{}, false
	}
	w, ok := knownWrites[s.sql]
	return w, ok
}

// compactWrites writes a batch's planned statements as fewer statements
// with the same effect: between two statements it does not recognise, the
// one-row inserts into a table become one multi-row insert, and the
// full-row upserts into a table become one multi-row upsert that keeps,
// for each key, the last row planned (the rows a full-row upsert leaves do
// not depend on the ones before it). Statements on different tables
// commute, and a statement it does not recognise keeps its place: every
// write before it is sent before it.
func compactWrites(stmts []stmt) ([]stmt, error) {
	type group struct {
		w     tableWrite
		rows  [][]any
		byKey map[string]int
	}
	var out []stmt
	var groups []*group
	index := map[string]*group{}
	flush := func() error {
		for _, g := range groups {
			s, err := g.w.statement(g.rows)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		groups, index = nil, map[string]*group{}
		return nil
	}
	for _, s := range stmts {
		w, ok := writeOf(s)
		if !ok {
			if err := flush(); err != nil {
				return nil, err
			}
			out = append(out, s)
			continue
		}
		g := index[w.t.name]
		if g != nil && g.w.kind != w.kind {
			// Inserts and upserts into one table keep their order.
			if err := flush(); err != nil {
				return nil, err
			}
			g = nil
		}
		if g == nil {
			g = &group{w: w, byKey: map[string]int{}}
			groups = append(groups, g)
			index[w.t.name] = g
		}
		if w.kind == kindUpsert {
			k, err := w.t.keyOf(s.args)
			if err != nil {
				return nil, err
			}
			if i, seen := g.byKey[k]; seen {
				g.rows[i] = s.args
				continue
			}
			g.byKey[k] = len(g.rows)
		}
		g.rows = append(g.rows, s.args)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// keyOf renders the key columns of a row as one string.
func (t table) keyOf(row []any) (string, error) {
	var b strings.Builder
	for _, k := range t.key {
		for i, c := range t.columns {
			if c == k {
				if err := appendLiteral(&b, row[i]); err != nil {
					return "", err
				}
				b.WriteByte(0)
			}
		}
	}
	return b.String(), nil
}

// statement writes rows as one multi-row insert or upsert with literals.
func (w tableWrite) statement(rows [][]any) (stmt, error) {
	if len(rows) == 1 {
		// One row: the prepared statement is as good.
		if w.kind == kindUpsert {
			return stmt{sql: w.t.upsertSQL(), args: rows[0]}, nil
		}
		return stmt{sql: w.t.insertSQL(), args: rows[0]}, nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + w.t.name + " (" + w.t.columnList("") + ") VALUES ")
	for i, row := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range row {
			if j > 0 {
				b.WriteString(", ")
			}
			if err := appendLiteral(&b, v); err != nil {
				return stmt{}, err
			}
		}
		b.WriteByte(')')
	}
	if w.kind == kindUpsert {
		b.WriteString(w.t.conflictClause())
	}
	return stmt{sql: b.String(), raw: true}, nil
}
