package engine

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SQLLiteral exposes the literal writer of planned writes to the
// black-box tests.
func SQLLiteral(v any) (string, error) {
	var b strings.Builder
	err := AppendLiteral(&b, v)
	return b.String(), err
}

// CopyRows copies rows (pointers to each row's fields) into the shadow of
// table name through the rebuild's binary COPY, for the black-box tests.
func CopyRows(ctx context.Context, pool *pgxpool.Pool, name string, columns []string, rows [][]any) (int64, error) {
	cs, err := newCopyStream(ctx, pool, Table{Name: name, Columns: columns})
	if err != nil {
		return 0, err
	}
	go cs.run(ctx, pool)
	for _, r := range rows {
		if err := cs.emit(ctx, r); err != nil {
			_, _ = cs.close(ctx)
			return 0, err
		}
	}
	return cs.close(ctx)
}
