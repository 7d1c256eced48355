package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// pollInterval re-reads STATE_DB between keyspace events, in case one is missed (a dropped
// connection): waits are level-triggered, events only make them prompt.
const pollInterval = 200 * time.Millisecond

// stateWatch wakes a waiter whenever orchagent touches STATE_DB entries of one session: its
// MIRROR_SESSION_TABLE entry and the ACL tables and rules named after it.
type stateWatch struct {
	ps   *redis.PubSub
	wake chan struct{}
	done chan struct{}
}

// watch subscribes before anything is written, so no state change can slip past the first read.
func watch(ctx context.Context, state *sonicdb.DB, session string) (*stateWatch, error) {
	sep := state.Separator()
	patterns := []string{
		fmt.Sprintf("__keyspace@%d__:%s%s%s", state.ID(), StateMirrorSession, sep, session),
		fmt.Sprintf("__keyspace@%d__:%s%s%s*", state.ID(), StateACLTable, sep, session),
		fmt.Sprintf("__keyspace@%d__:%s%s%s*", state.ID(), StateACLRule, sep, session),
	}
	ps := state.Client().PSubscribe(ctx, patterns...)
	for range patterns {
		if _, err := ps.Receive(ctx); err != nil {
			ps.Close()
			return nil, fmt.Errorf("subscribing to STATE_DB keyspace events of %s: %w", session, err)
		}
	}
	w := &stateWatch{ps: ps, wake: make(chan struct{}, 1), done: make(chan struct{})}
	msgs := ps.Channel()
	go func() {
		defer close(w.done)
		for range msgs {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

func (w *stateWatch) close() {
	w.ps.Close()
	<-w.done
}

// until calls check after every event and poll until it reports done, fails, or ctx ends (then
// it returns ctx's error; the caller tells the timeout from the last state it saw).
func (w *stateWatch) until(ctx context.Context, check func() (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.wake:
		case <-t.C:
		}
	}
}
