package eventstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
	// database/sql keeps only two idle connections by default, so every
	// other concurrent appender would pay for a fresh acquire. But its idle
	// connections are taken from the pgx pool and never handed back on
	// demand, so it may keep at most half of them: code that uses the pgx
	// pool directly (COPY in rebuilds) always finds the other half.
	db.SetMaxIdleConns(max(2, int(cfg.MaxConns)/2))
	db.SetConnMaxIdleTime(time.Minute)
	return db, pool, nil
}
