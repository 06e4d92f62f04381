package engine

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
	t    Table
	kind writeKind
}

var (
	knownWritesOnce sync.Once
	knownWrites     map[string]tableWrite
)

// writeOf recognises the one-row inserts and full-row upserts that
// planners build from the registered tables (Table.Insert, Table.Upsert).
func writeOf(s Stmt) (tableWrite, bool) {
	knownWritesOnce.Do(func() {
		knownWrites = map[string]tableWrite{}
		for _, t := range registered {
			knownWrites[t.UpsertSQL()] = tableWrite{t, kindUpsert}
			knownWrites[t.InsertSQL()] = tableWrite{t, kindInsert}
		}
	})
	if s.Raw {
		return tableWrite{}, false
	}
	w, ok := knownWrites[s.SQL]
	return w, ok
}

// CompactWrites writes a batch's planned statements as fewer statements
// with the same effect: between two statements it does not recognise, the
// one-row inserts into a table become one multi-row insert, and the
// full-row upserts into a table become one multi-row upsert that keeps,
// for each key, the last row planned (the rows a full-row upsert leaves do
// not depend on the ones before it). Statements on different tables
// commute, and a statement it does not recognise keeps its place: every
// write before it is sent before it.
func CompactWrites(stmts []Stmt) ([]Stmt, error) {
	type group struct {
		w     tableWrite
		rows  [][]any
		byKey map[string]int
	}
	var out []Stmt
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
		g := index[w.t.Name]
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
			index[w.t.Name] = g
		}
		if w.kind == kindUpsert {
			k, err := w.t.keyOf(s.Args)
			if err != nil {
				return nil, err
			}
			if i, seen := g.byKey[k]; seen {
				g.rows[i] = s.Args
				continue
			}
			g.byKey[k] = len(g.rows)
		}
		g.rows = append(g.rows, s.Args)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// keyOf renders the key columns of a row as one string.
func (t Table) keyOf(row []any) (string, error) {
	var b strings.Builder
	for _, k := range t.Key {
		for i, c := range t.Columns {
			if c == k {
				if err := AppendLiteral(&b, row[i]); err != nil {
					return "", err
				}
				b.WriteByte(0)
			}
		}
	}
	return b.String(), nil
}

// statement writes rows as one multi-row insert or upsert with literals.
func (w tableWrite) statement(rows [][]any) (Stmt, error) {
	if len(rows) == 1 {
		// One row: the prepared statement is as good.
		if w.kind == kindUpsert {
			return Stmt{SQL: w.t.UpsertSQL(), Args: rows[0]}, nil
		}
		return Stmt{SQL: w.t.InsertSQL(), Args: rows[0]}, nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + w.t.Name + " (" + w.t.ColumnList("") + ") VALUES ")
	for i, row := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range row {
			if j > 0 {
				b.WriteString(", ")
			}
			if err := AppendLiteral(&b, v); err != nil {
				return Stmt{}, err
			}
		}
		b.WriteByte(')')
	}
	if w.kind == kindUpsert {
		b.WriteString(w.t.ConflictClause())
	}
	return Stmt{SQL: b.String(), Raw: true}, nil
}
