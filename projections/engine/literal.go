package engine

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// AppendLiteral writes v as an SQL literal for an EXECUTE argument. A
// batch of planned writes goes to the server as one simple-protocol text;
// writing the literals here, once, is cheaper than handing the text and
// its arguments to the driver, which scans the whole text for
// placeholders. Strings are quoted as E'…' literals, so the text means the same
// whatever standard_conforming_strings says; other values are written so
// that PostgreSQL coerces them to the prepared statement's parameter type.
func AppendLiteral(b *strings.Builder, v any) error {
	// The types row fields have, without reflection or allocations.
	var num [32]byte
	switch x := v.(type) {
	case int64:
		b.WriteByte('(')
		b.Write(strconv.AppendInt(num[:0], x, 10))
		b.WriteByte(')')
		return nil
	case int:
		b.WriteByte('(')
		b.Write(strconv.AppendInt(num[:0], int64(x), 10))
		b.WriteByte(')')
		return nil
	case string:
		return appendQuoted(b, x)
	case bool:
		if x {
			b.WriteString("TRUE")
		} else {
			b.WriteString("FALSE")
		}
		return nil
	case time.Time:
		b.WriteByte('\'')
		b.Write(x.UTC().Truncate(time.Microsecond).AppendFormat(num[:0], "2006-01-02 15:04:05.999999Z07:00"))
		b.WriteByte('\'')
		return nil
	case *int64:
		if x == nil {
			b.WriteString("NULL")
			return nil
		}
		return AppendLiteral(b, *x)
	case *string:
		if x == nil {
			b.WriteString("NULL")
			return nil
		}
		return appendQuoted(b, *x)
	case *time.Time:
		if x == nil {
			b.WriteString("NULL")
			return nil
		}
		return AppendLiteral(b, *x)
	}
	if vr, ok := v.(driver.Valuer); ok {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			b.WriteString("NULL")
			return nil
		}
		var err error
		if v, err = vr.Value(); err != nil {
			return err
		}
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("NULL")
		return nil
	case time.Time:
		// Microseconds, as PostgreSQL stores them (truncated, like the
		// binary encoding a rebuild's COPY uses).
		b.WriteString("'" + x.UTC().Truncate(time.Microsecond).Format("2006-01-02 15:04:05.999999Z07:00") + "'")
		return nil
	case []byte:
		b.WriteString(`'\x` + fmt.Sprintf("%x", x) + `'::bytea`)
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			b.WriteString("NULL")
			return nil
		}
		return AppendLiteral(b, rv.Elem().Interface())
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString("(" + strconv.FormatInt(rv.Int(), 10) + ")")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		b.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString("'" + strconv.FormatFloat(rv.Float(), 'g', -1, 64) + "'")
	case reflect.Bool:
		if rv.Bool() {
			b.WriteString("TRUE")
		} else {
			b.WriteString("FALSE")
		}
	case reflect.String:
		return appendQuoted(b, rv.String())
	case reflect.Slice:
		// An array of integers, as '{1,2,3}'.
		b.WriteString("'{")
		for i := range rv.Len() {
			el := rv.Index(i)
			switch el.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.FormatInt(el.Int(), 10))
			default:
				return fmt.Errorf("no SQL literal for %T", v)
			}
		}
		b.WriteString("}'")
	default:
		return fmt.Errorf("no SQL literal for %T", v)
	}
	return nil
}

var errNUL = errors.New("text contains a NUL byte, which PostgreSQL cannot store")

// appendQuoted writes s as an E'…' string literal: quotes and backslashes
// doubled.
func appendQuoted(b *strings.Builder, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errNUL
	}
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return nil
}
