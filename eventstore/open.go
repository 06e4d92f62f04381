package eventstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Open connects one pgx pool and a database/sql handle over it, so the
// store, watermill subscribers and read models share the same connections.
func Open(ctx context.Context, url string, maxConns int32) (*sql.DB, *pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	// database/sql keeps only two idle connections by default; every other
	// concurrent caller would then pay for a fresh acquire. The pgx pool
	// already bounds the total.
	db.SetMaxIdleConns(int(cfg.MaxConns))
	db.SetMaxOpenConns(int(cfg.MaxConns))
	return db, pool, nil
}
