package engine

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL type OIDs the binary COPY encoder writes.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidUUID        = 2950
	oidJSONB       = 3802
)

// copyHeader starts a binary COPY stream: the signature, no flags, no
// header extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// postgresEpoch is where binary timestamps and dates count from.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// copyChunk is how many bytes of encoded rows go to the server at once.
const copyChunk = 256 << 10

// copyStream feeds one shadow table through a binary COPY. Rows are
// encoded when they are emitted, on the emitter's goroutine, so the caller
// may change its row afterwards; full chunks go to the goroutine that runs
// the COPY. Encoding the row's own field types by the column types is
// several times cheaper than the driver's generic per-value encoding.
type copyStream struct {
	t    Table
	oids []uint32

	mu  sync.Mutex // one emitter at a time, whichever goroutine it is
	buf []byte
	n   int64

	chunks chan []byte
	done   chan struct{}
	err    error // set before done is closed
}

// newCopyStream prepares a COPY into the shadow of t, encoding each column
// for the type the live table gives it.
func newCopyStream(ctx context.Context, pool *pgxpool.Pool, t Table) (*copyStream, error) {
	oids, err := columnTypes(ctx, pool, t)
	if err != nil {
		return nil, err
	}
	c := &copyStream{t: t, oids: oids, chunks: make(chan []byte, 4), done: make(chan struct{})}
	c.buf = append(make([]byte, 0, copyChunk+4096), copyHeader...)
	return c, nil
}

// columnTypes returns the type of each of t's columns, in t's order.
func columnTypes(ctx context.Context, pool *pgxpool.Pool, t Table) ([]uint32, error) {
	rows, err := pool.Query(ctx, `SELECT attname, atttypid FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, t.Name)
	if err != nil {
		return nil, fmt.Errorf("column types of %s: %w", t.Name, err)
	}
	byName := map[string]uint32{}
	for rows.Next() {
		var name string
		var oid uint32
		if err := rows.Scan(&name, &oid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("column types of %s: %w", t.Name, err)
		}
		byName[name] = oid
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("column types of %s: %w", t.Name, err)
	}
	oids := make([]uint32, len(t.Columns))
	for i, col := range t.Columns {
		oid, ok := byName[col]
		if !ok {
			return nil, fmt.Errorf("column types of %s: no column %s", t.Name, col)
		}
		oids[i] = oid
	}
	return oids, nil
}

// run copies the chunks into the shadow table until they end.
func (c *copyStream) run(ctx context.Context, pool *pgxpool.Pool) {
	defer close(c.done)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		c.err = err
		c.drain()
		return
	}
	defer conn.Release()
	cols := make([]string, len(c.t.Columns))
	for i, col := range c.t.Columns {
		cols[i] = pgx.Identifier{col}.Sanitize()
	}
	sql := `COPY ` + pgx.Identifier{c.t.Name + ShadowSuffix}.Sanitize() + ` (` + strings.Join(cols, ", ") + `) FROM STDIN (FORMAT binary)`
	if _, err := conn.Conn().PgConn().CopyFrom(ctx, &chunkReader{chunks: c.chunks}, sql); err != nil {
		c.err = err
		c.drain()
	}
}

// drain unblocks emitters after a failed COPY; their rows are dropped with
// it.
func (c *copyStream) drain() {
	go func() {
		for range c.chunks {
		}
	}()
}

// emit encodes one row, given as pointers to its fields in the table's
// column order (a row type's fields()).
func (c *copyStream) emit(ctx context.Context, ptrs []any) error {
	if len(ptrs) != len(c.oids) {
		return fmt.Errorf("copy into %s: row has %d values for %d columns", c.t.Name, len(ptrs), len(c.oids))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	start := len(c.buf)
	c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(len(ptrs)))
	for i, p := range ptrs {
		var err error
		if c.buf, err = appendCopyField(c.buf, c.oids[i], p); err != nil {
			c.buf = c.buf[:start]
			return fmt.Errorf("copy into %s, column %s: %w", c.t.Name, c.t.Columns[i], err)
		}
	}
	c.n++
	if len(c.buf) < copyChunk {
		return nil
	}
	return c.send(ctx)
}

// send hands the encoded rows to the COPY and starts a new chunk.
func (c *copyStream) send(ctx context.Context) error {
	chunk := c.buf
	c.buf = make([]byte, 0, copyChunk+4096)
	select {
	case c.chunks <- chunk:
		return nil
	case <-c.done:
		return fmt.Errorf("copy into %s stopped: %w", c.t.Name, c.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close ends the stream with its trailer and waits for the COPY; it
// returns the rows copied.
func (c *copyStream) close(ctx context.Context) (int64, error) {
	c.mu.Lock()
	c.buf = binary.BigEndian.AppendUint16(c.buf, 0xffff)
	err := c.send(ctx)
	c.mu.Unlock()
	close(c.chunks)
	<-c.done
	if c.err != nil {
		return c.n, c.err
	}
	return c.n, err
}

// chunkReader reads the chunks off their channel as one stream.
type chunkReader struct {
	chunks <-chan []byte
	cur    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		chunk, ok := <-r.chunks
		if !ok {
			return 0, io.EOF
		}
		r.cur = chunk
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	uuidType     = reflect.TypeFor[uuid.UUID]()
	errNoEncoder = errors.New("no binary COPY encoding")
)

// appendCopyField appends one field of a binary COPY row: its length and
// its value as column type oid reads it. p points to the value; a nil
// pointer (or a pointer to a nil pointer) is NULL.
func appendCopyField(b []byte, oid uint32, p any) ([]byte, error) {
	if p == nil {
		return appendCopyNull(b), nil
	}
	switch x := p.(type) {
	case *int64:
		if x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyInt(b, oid, *x)
	case **int64:
		if x == nil || *x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyInt(b, oid, **x)
	case *string:
		if x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyText(b, oid, *x)
	case **string:
		if x == nil || *x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyText(b, oid, **x)
	case *time.Time:
		if x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyTime(b, oid, *x)
	case **time.Time:
		if x == nil || *x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyTime(b, oid, **x)
	case *bool:
		if x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyBool(b, oid, *x)
	case *uuid.UUID:
		if x == nil {
			return appendCopyNull(b), nil
		}
		return appendCopyUUID(b, oid, *x)
	case driver.Valuer:
		if rv := reflect.ValueOf(p); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return appendCopyNull(b), nil
		}
		v, err := x.Value()
		if err != nil {
			return b, err
		}
		return appendCopyDriverValue(b, oid, v)
	}
	// Named types and other widths, through reflection.
	rv := reflect.ValueOf(p)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return appendCopyNull(b), nil
		}
		rv = rv.Elem()
	}
	switch {
	case rv.Type() == timeType:
		return appendCopyTime(b, oid, *(*time.Time)(rv.Addr().UnsafePointer()))
	case rv.Type() == uuidType:
		return appendCopyUUID(b, oid, rv.Interface().(uuid.UUID))
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return appendCopyInt(b, oid, rv.Int())
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return appendCopyInt(b, oid, int64(rv.Uint()))
	case reflect.String:
		return appendCopyText(b, oid, rv.String())
	case reflect.Bool:
		return appendCopyBool(b, oid, rv.Bool())
	}
	return b, fmt.Errorf("%w for %T into type %d", errNoEncoder, p, oid)
}

func appendCopyDriverValue(b []byte, oid uint32, v driver.Value) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return appendCopyNull(b), nil
	case int64:
		return appendCopyInt(b, oid, x)
	case string:
		return appendCopyText(b, oid, x)
	case []byte:
		if oid == oidBytea {
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			return append(b, x...), nil
		}
		return appendCopyText(b, oid, string(x))
	case bool:
		return appendCopyBool(b, oid, x)
	case time.Time:
		return appendCopyTime(b, oid, x)
	}
	return b, fmt.Errorf("%w for driver value %T into type %d", errNoEncoder, v, oid)
}

func appendCopyNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, math.MaxUint32) }

func appendCopyInt(b []byte, oid uint32, v int64) ([]byte, error) {
	switch oid {
	case oidInt8:
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(v)), nil
	case oidInt4:
		if v < math.MinInt32 || v > math.MaxInt32 {
			return b, fmt.Errorf("%d is out of range for integer", v)
		}
		b = binary.BigEndian.AppendUint32(b, 4)
		return binary.BigEndian.AppendUint32(b, uint32(int32(v))), nil
	case oidInt2:
		if v < math.MinInt16 || v > math.MaxInt16 {
			return b, fmt.Errorf("%d is out of range for smallint", v)
		}
		b = binary.BigEndian.AppendUint32(b, 2)
		return binary.BigEndian.AppendUint16(b, uint16(int16(v))), nil
	}
	return b, fmt.Errorf("%w for an integer into type %d", errNoEncoder, oid)
}

func appendCopyText(b []byte, oid uint32, s string) ([]byte, error) {
	switch oid {
	case oidText, oidVarchar, oidBPChar, oidJSON:
	case oidJSONB:
		// jsonb's binary form is a version byte and the text.
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)+1))
		b = append(b, 1)
		return append(b, s...), nil
	default:
		return b, fmt.Errorf("%w for a string into type %d", errNoEncoder, oid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return b, errNUL
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...), nil
}

func appendCopyBool(b []byte, oid uint32, v bool) ([]byte, error) {
	if oid != oidBool {
		return b, fmt.Errorf("%w for a bool into type %d", errNoEncoder, oid)
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1), nil
	}
	return append(b, 0), nil
}

// appendCopyTime writes t as microseconds since 2000-01-01 UTC, truncated
// as PostgreSQL stores them, or for a date column as the days of t's
// calendar date.
func appendCopyTime(b []byte, oid uint32, t time.Time) ([]byte, error) {
	switch oid {
	case oidTimestamptz, oidTimestamp:
		if oid == oidTimestamp {
			// A timestamp without time zone keeps the wall clock.
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		}
		us := t.Unix()*1_000_000 + int64(t.Nanosecond()/1000) - postgresEpoch.Unix()*1_000_000
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(us)), nil
	case oidDate:
		y, m, d := t.Date()
		days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()/86400 - postgresEpoch.Unix()/86400
		b = binary.BigEndian.AppendUint32(b, 4)
		return binary.BigEndian.AppendUint32(b, uint32(int32(days))), nil
	}
	return b, fmt.Errorf("%w for a time into type %d", errNoEncoder, oid)
}

func appendCopyUUID(b []byte, oid uint32, u uuid.UUID) ([]byte, error) {
	switch oid {
	case oidUUID:
		b = binary.BigEndian.AppendUint32(b, 16)
		return append(b, u[:]...), nil
	case oidText, oidVarchar:
		return appendCopyText(b, oid, u.String())
	}
	return b, fmt.Errorf("%w for a uuid into type %d", errNoEncoder, oid)
}
