// Package backup writes and restores a logical, portable copy of a
// shopledger database: the event log with its seal, and everything the log
// cannot rebuild (shop connections and their encrypted credentials,
// settings, tokens, alert channels and the alert outbox, consumer offsets).
//
// A backup is one gzip stream: a first line naming the format, then one
// section per table (a JSON header line, the rows in PostgreSQL's COPY text
// format, a `\.` line), then a trailer line with the row count of every
// table, the seal's head and the highest log transaction id. Everything is
// read in one snapshot. A file cut short has no trailer, and Restore
// refuses it.
//
// Restore loads a backup into an empty, migrated database in one
// transaction, then adopts the log (see eventstore.Adopt), so the restored
// events keep their order and new ones follow them on any cluster.
package backup

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopledger/shopledger/eventstore"
)

// magic is the first line of every backup.
const magic = "shopledger-backup v1"

// ErrIncomplete means the backup ends before its trailer: it was cut short.
var ErrIncomplete = errors.New("backup is incomplete: no trailer")

// Manifest describes a backup; it is the backup's trailer.
type Manifest struct {
	CreatedAt time.Time `json:"created_at"`
	// Migrations are the schema versions applied in the source.
	Migrations []int64 `json:"migrations"`
	// Rows is each table's row count.
	Rows map[string]int64 `json:"rows"`
	// SealSeq and SealHead are the last sealed sequence and its hash (hex).
	SealSeq  int64  `json:"seal_seq"`
	SealHead string `json:"seal_head"`
	// HighestLogID is the highest log transaction id stored in the source.
	HighestLogID string `json:"highest_log_id"`
}

// sectionHeader starts one table's rows.
type sectionHeader struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

// trailer ends the backup.
type trailer struct {
	Manifest Manifest `json:"trailer"`
}

// skipped tables are never backed up: goose's bookkeeping is rebuilt by
// migrating the target, the log clock is the target cluster's own, and
// where seal rows start carrying their event's type is derived again from
// the restored seal (a backup from before seal rows had types has none).
var skipped = []string{"goose_db_version", "log_clock", "event_seal_typed_from"}

// Write writes a backup of the database behind pool to w.
func Write(ctx context.Context, pool *pgxpool.Pool, w io.Writer) (Manifest, error) {
	m := Manifest{CreatedAt: time.Now().UTC(), Rows: map[string]int64{}}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only

	if m.Migrations, err = appliedMigrations(ctx, tx); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	tables, err := listTables(ctx, tx)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	err = tx.QueryRow(ctx, `SELECT coalesce((SELECT seq FROM event_seal ORDER BY seq DESC LIMIT 1), 0),
			coalesce((SELECT encode(hash, 'hex') FROM event_seal ORDER BY seq DESC LIMIT 1), ''),
			(SELECT highest::text FROM log_highest_xid())`).Scan(&m.SealSeq, &m.SealHead, &m.HighestLogID)
	if err != nil {
		return m, fmt.Errorf("backup: seal head: %w", err)
	}

	gz := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(gz, 1<<16)
	if _, err := fmt.Fprintln(bw, magic); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	for _, t := range tables {
		h, err := json.Marshal(sectionHeader{Table: t.name, Columns: t.columns})
		if err != nil {
			return m, err
		}
		if _, err := fmt.Fprintf(bw, "%s\n", h); err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		lines := &lineCounter{w: bw}
		sql := `COPY (SELECT ` + quoteColumns(t.columns) + ` FROM ` + pgx.Identifier{t.name}.Sanitize() + `) TO STDOUT`
		if _, err := tx.Conn().PgConn().CopyTo(ctx, lines, sql); err != nil {
			return m, fmt.Errorf("backup %s: %w", t.name, err)
		}
		m.Rows[t.name] = lines.n
		if _, err := bw.WriteString("\\.\n"); err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
	}
	tr, err := json.Marshal(trailer{Manifest: m})
	if err != nil {
		return m, err
	}
	if _, err := fmt.Fprintf(bw, "%s\n", tr); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := gz.Close(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	Manifest Manifest
	// ShiftRaisedBy is how far adopting the log raised its clock.
	ShiftRaisedBy int64
}

// Restore loads the backup in r into the database behind pool, which must
// be migrated and hold no events. It loads every table in one transaction,
// checks each table's row count against the trailer, moves every sequence
// past the restored rows and adopts the log. Read models come back as the
// backup holds them; callers rebuild them from the log afterwards.
func Restore(ctx context.Context, pool *pgxpool.Pool, r io.Reader) (RestoreReport, error) {
	var rep RestoreReport
	gz, err := gzip.NewReader(r)
	if err != nil {
		return rep, fmt.Errorf("restore: not a backup: %w", err)
	}
	br := bufio.NewReaderSize(gz, 1<<16)
	first, err := br.ReadString('\n')
	if err != nil || strings.TrimSuffix(first, "\n") != magic {
		return rep, fmt.Errorf("restore: not a shopledger backup (first line %q)", strings.TrimSpace(first))
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after commit this is a no-op
	// The load writes other tables before events: announce first.
	if _, err := tx.Exec(ctx, `SELECT log_announce()`); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	// Rows the schema's triggers would derive from restored ones (a
	// shop's organisation) are restored themselves.
	if _, err := tx.Exec(ctx, `SELECT set_config('shopledger.restoring', 'on', true)`); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}

	empty, err := eventstore.EmptyTx(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	var shops bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM shop_connections)`).Scan(&shops); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if !empty || shops {
		return rep, errors.New("restore: the target database already holds events or shops; restore only into an empty database")
	}
	targetMigrations, err := appliedMigrations(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	tables, err := listTables(ctx, tx)
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	known := map[string]table{}
	for _, t := range tables {
		known[t.name] = t
	}

	loaded := map[string]int64{}
	var m *Manifest
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return rep, ErrIncomplete
		}
		if err != nil {
			return rep, fmt.Errorf("restore: %w", err)
		}
		if strings.HasPrefix(line, `{"trailer":`) {
			var tr trailer
			if err := json.Unmarshal([]byte(line), &tr); err != nil {
				return rep, fmt.Errorf("restore: trailer: %w", err)
			}
			m = &tr.Manifest
			break
		}
		var h sectionHeader
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			return rep, fmt.Errorf("restore: section header: %w", err)
		}
		t, ok := known[h.Table]
		if !ok {
			return rep, fmt.Errorf("restore: the backup has table %s, which this version's schema does not", h.Table)
		}
		for _, c := range h.Columns {
			if !slices.Contains(t.columns, c) {
				return rep, fmt.Errorf("restore: the backup's %s has column %s, which this version's schema does not", h.Table, c)
			}
		}
		sec := &sectionReader{r: br}
		sql := `COPY ` + pgx.Identifier{h.Table}.Sanitize() + ` (` + quoteColumns(h.Columns) + `) FROM STDIN`
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, sec, sql); err != nil {
			if sec.err != nil {
				err = sec.err
			}
			return rep, fmt.Errorf("restore %s: %w", h.Table, err)
		}
		if !sec.done {
			return rep, ErrIncomplete
		}
		loaded[h.Table] = sec.rows
	}
	rep.Manifest = *m
	for _, v := range m.Migrations {
		if !slices.Contains(targetMigrations, v) {
			return rep, fmt.Errorf("restore: the backup was taken at schema version %d, which this version does not know; restore with a version at least as new as the source", v)
		}
	}
	for name, n := range m.Rows {
		if loaded[name] != n {
			return rep, fmt.Errorf("restore: table %s: loaded %d rows, the backup's trailer says %d", name, loaded[name], n)
		}
	}

	// Seal rows restored without a type are read the old way (eventstore
	// ListSealed): typed rows start after the last of them.
	if _, err := tx.Exec(ctx, `UPDATE event_seal_typed_from
		SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM event_seal WHERE type IS NULL)`); err != nil {
		return rep, fmt.Errorf("restore: seal types: %w", err)
	}

	// Sequences continue after the restored rows.
	rows, err := tx.Query(ctx, `SELECT s.relname, t.relname, a.attname
		FROM pg_class s
		JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
		JOIN pg_class t ON t.oid = d.refobjid
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
		JOIN pg_namespace n ON n.oid = s.relnamespace
		WHERE s.relkind = 'S' AND n.nspname = current_schema()`)
	if err != nil {
		return rep, fmt.Errorf("restore: sequences: %w", err)
	}
	type seqCol struct{ seq, table, column string }
	var seqs []seqCol
	for rows.Next() {
		var s seqCol
		if err := rows.Scan(&s.seq, &s.table, &s.column); err != nil {
			rows.Close()
			return rep, fmt.Errorf("restore: sequences: %w", err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("restore: sequences: %w", err)
	}
	for _, s := range seqs {
		q := `SELECT setval(` + quoteLiteral(pgx.Identifier{s.seq}.Sanitize()) + `, coalesce(max(` + pgx.Identifier{s.column}.Sanitize() + `), 0) + 1, false) FROM ` + pgx.Identifier{s.table}.Sanitize()
		if _, err := tx.Exec(ctx, q); err != nil {
			return rep, fmt.Errorf("restore: sequence %s: %w", s.seq, err)
		}
	}

	var raised int64
	if err := tx.QueryRow(ctx, `SELECT log_adopt()`).Scan(&raised); err != nil {
		return rep, fmt.Errorf("restore: adopt log: %w", err)
	}
	rep.ShiftRaisedBy = raised
	if err := eventstore.CheckOrderTx(ctx, tx); err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return rep, fmt.Errorf("restore: commit: %w", err)
	}
	return rep, nil
}

type table struct {
	name    string
	columns []string
}

// listTables lists the schema's tables in an order that loads referenced
// tables before the tables referring to them, each with its stored (not
// generated) columns.
func listTables(ctx context.Context, tx pgx.Tx) ([]table, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname,
			array_agg(a.attname::text ORDER BY a.attnum),
			coalesce((SELECT array_agg(DISTINCT r.relname::text) FROM pg_constraint f JOIN pg_class r ON r.oid = f.confrelid
				WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid), '{}')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
		GROUP BY c.oid, c.relname
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var all []table
	deps := map[string][]string{}
	for rows.Next() {
		var t table
		var refs []string
		if err := rows.Scan(&t.name, &t.columns, &refs); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if slices.Contains(skipped, t.name) || strings.HasSuffix(t.name, "_rebuild") {
			continue
		}
		all = append(all, t)
		deps[t.name] = refs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	// Referenced tables first; names break ties, so the order is stable.
	var out []table
	placed := map[string]bool{}
	for len(out) < len(all) {
		progress := false
		for _, t := range all {
			if placed[t.name] {
				continue
			}
			ready := true
			for _, d := range deps[t.name] {
				if _, inBackup := deps[d]; inBackup && !placed[d] {
					ready = false
				}
			}
			if ready {
				out = append(out, t)
				placed[t.name] = true
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("list tables: foreign keys form a cycle")
		}
	}
	return out, nil
}

func appliedMigrations(ctx context.Context, tx pgx.Tx) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT version_id FROM goose_db_version WHERE is_applied AND version_id > 0 ORDER BY version_id`)
	if err != nil {
		return nil, fmt.Errorf("applied migrations: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func quoteColumns(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// lineCounter counts the rows COPY writes: in its text format every row
// is one line, newlines inside values are escaped.
type lineCounter struct {
	w io.Writer
	n int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.n++
		}
	}
	return c.w.Write(p)
}

// sectionReader yields one table's COPY rows and stops at its `\.` line,
// which no row can equal: COPY's text format writes a backslash in a value
// as two.
type sectionReader struct {
	r    *bufio.Reader
	buf  []byte
	rows int64
	done bool
	err  error
}

func (s *sectionReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.err = ErrIncomplete
			} else {
				s.err = err
			}
			return 0, s.err
		}
		if string(line) == "\\.\n" {
			s.done = true
			return 0, io.EOF
		}
		s.rows++
		s.buf = line
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}
