package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/shopledger/shopledger/eventstore"
)

// AllowNonDurableEnv names the escape hatch for throwaway development and
// CI databases (fsync=off, synchronous_commit=off): set to true, a binary
// starts on such a database and logs a warning instead of refusing. Each
// cmd reads it into its config and hands it to OpenDB as AllowNonDurable;
// never set it in production.
const AllowNonDurableEnv = "SHOPLEDGER_ALLOW_NONDURABLE_DATABASE"

// ErrNotDurable means the database acknowledges commits it can still lose
// in a crash, which would break the promise behind every acknowledged
// webhook: its evidence is committed before we answer.
var ErrNotDurable = errors.New("database commits are not durable")

// Durability is how the database makes a commit survive a crash, as one
// session sees it: settings made for the database, for the role or in the
// connection URL count as much as the server's own.
type Durability struct {
	Fsync             string
	SynchronousCommit string
}

// durableCommitLevels are the synchronous_commit values under which COMMIT
// returns only once the commit is on disk here and, with synchronous
// replicas, applied on them. "local" and "remote_write" acknowledge before
// a synchronous replica has the commit on disk, so a failover can lose it;
// "off" loses the last commits on any crash.
var durableCommitLevels = map[string]bool{"on": true, "remote_apply": true}

// Check returns nil, or ErrNotDurable naming every unsafe setting.
func (d Durability) Check() error {
	var bad []string
	if d.Fsync != "on" {
		bad = append(bad, fmt.Sprintf("fsync=%s (want on)", d.Fsync))
	}
	if !durableCommitLevels[d.SynchronousCommit] {
		bad = append(bad, fmt.Sprintf("synchronous_commit=%s (want on, or remote_apply with synchronous replicas)", d.SynchronousCommit))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrNotDurable, strings.Join(bad, ", "))
	}
	return nil
}

// ReadDurability asks the database for its durability settings. Through a
// pool it sees what every connection of that pool gets.
func ReadDurability(ctx context.Context, q eventstore.Queryer) (Durability, error) {
	var d Durability
	err := q.QueryRowContext(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&d.Fsync, &d.SynchronousCommit)
	if err != nil {
		return d, fmt.Errorf("read durability settings: %w", err)
	}
	return d, nil
}

// CheckDurability is the startup self-check: it refuses a database whose
// commits are not durable, unless allowNonDurable (the escape hatch named
// by AllowNonDurableEnv) is set, in which case it logs a warning instead.
func CheckDurability(ctx context.Context, q eventstore.Queryer, allowNonDurable bool, logger *slog.Logger) error {
	d, err := ReadDurability(ctx, q)
	if err != nil {
		return err
	}
	err = d.Check()
	if err == nil {
		return nil
	}
	if allowNonDurable {
		if logger != nil {
			logger.Warn("database commits are not durable; starting anyway because "+AllowNonDurableEnv+" is set (development only)",
				"fsync", d.Fsync, "synchronous_commit", d.SynchronousCommit)
		}
		return nil
	}
	return fmt.Errorf("%w; fix the server (or the URL's or role's settings), or for a throwaway development database set %s=true", err, AllowNonDurableEnv)
}
