package sonicdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch timing. A server that closes the connection is noticed at once; one that goes silent is
// noticed within 2*healthInterval (an unanswered PING).
const (
	confirmTimeout = 5 * time.Second
	healthInterval = time.Second
	minBackoff     = 50 * time.Millisecond
	maxBackoff     = time.Second
)

// ErrCannotCheck wraps the error of a server that refuses to show its configuration (CONFIG
// renamed or forbidden by ACL). Callers may treat it as a warning: Watch still works if the
// server happens to be configured right.
var ErrCannotCheck = errors.New("cannot check notify-keyspace-events")

// WatchHandler receives a table's state, level-triggered: Synced with every key present right
// after each (re)subscription, then Changed for each keyspace event, after which the handler
// re-reads the entry itself (it may be gone). Calls come one at a time from Watch's goroutine.
type WatchHandler interface {
	Synced(keys []string)
	Changed(key string)
}

// WatchErrorHandler may also be implemented by a WatchHandler to learn why a subscription was
// lost before Watch re-subscribes (for logging; Watch recovers on its own).
type WatchErrorHandler interface {
	WatchError(err error)
}

// WatchFuncs adapts functions to WatchHandler and WatchErrorHandler; nil functions are skipped.
type WatchFuncs struct {
	OnSynced  func(keys []string)
	OnChanged func(key string)
	OnError   func(err error)
}

// Synced calls OnSynced.
func (w WatchFuncs) Synced(keys []string) {
	if w.OnSynced != nil {
		w.OnSynced(keys)
	}
}

// Changed calls OnChanged.
func (w WatchFuncs) Changed(key string) {
	if w.OnChanged != nil {
		w.OnChanged(key)
	}
}

// WatchError calls OnError.
func (w WatchFuncs) WatchError(err error) {
	if w.OnError != nil {
		w.OnError(err)
	}
}

// Watch follows a table until ctx ends. It PSUBSCRIBEs __keyspace@<id>__:<TABLE><sep>*, waits
// for the server's confirmation, then lists the table and calls h.Synced; every later event on a
// key of the table calls h.Changed. When the connection drops (server restart, network) it
// re-subscribes with backoff and calls h.Synced again with a full listing, so nothing that
// happened while it was away is missed. It returns ctx.Err() when ctx ends, or an error at once
// for a nil handler or empty table name.
//
// Watch relies on the server's notify-keyspace-events; see CheckKeyspaceEvents.
func (d *DB) Watch(ctx context.Context, table string, h WatchHandler) error {
	if h == nil {
		return errors.New("sonicdb: Watch: nil handler")
	}
	if table == "" {
		return errors.New("sonicdb: Watch: empty table name")
	}
	tablePrefix := d.Key(table, "")
	w := watch{
		db:      d,
		table:   table,
		h:       h,
		pattern: fmt.Sprintf("__keyspace@%d__:%s*", d.id, escapeGlob(tablePrefix)),
		prefix:  fmt.Sprintf("__keyspace@%d__:%s", d.id, tablePrefix),
	}
	eh, _ := h.(WatchErrorHandler)
	backoff := minBackoff
	for {
		synced, err := w.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if eh != nil {
			eh.WatchError(fmt.Errorf("%s: watch %s: %w", d.name, w.pattern, err))
		}
		if synced {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

type watch struct {
	db      *DB
	table   string
	h       WatchHandler
	pattern string // escaped PSUBSCRIBE pattern
	prefix  string // channel prefix stripped to get the key
}

// once runs one subscription until it fails; synced reports whether it got as far as Synced.
// It never returns a nil error.
//
// It drives the PubSub with ReceiveTimeout rather than Channel(): go-redis's Channel() swallows
// receive errors and reconnects behind the caller's back (its health check re-subscribes too),
// so the caller would never learn that events were lost and a full re-read is due.
func (w *watch) once(ctx context.Context) (synced bool, err error) {
	ps := w.db.client.PSubscribe(ctx) // no pattern yet: nothing is dialled
	defer ps.Close()
	// Close interrupts a blocked receive as soon as ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	if err := ps.PSubscribe(ctx, w.pattern); err != nil {
		return false, fmt.Errorf("psubscribe: %w", err)
	}
	if err := w.confirm(ctx, ps); err != nil {
		return false, err
	}
	// Subscribed first, listed second: a write racing the listing shows up in both, never in
	// neither.
	keys, err := w.db.Keys(ctx, w.table)
	if err != nil {
		return false, err
	}
	w.h.Synced(keys)

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			if !isTimeout(err) || ctx.Err() != nil {
				return true, fmt.Errorf("receive: %w", err)
			}
			if pinged {
				return true, fmt.Errorf("no answer to ping within %v", healthInterval)
			}
			if err := ps.Ping(ctx); err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			if key, ok := strings.CutPrefix(m.Channel, w.prefix); ok {
				w.h.Changed(key)
			}
		}
	}
}

// confirm waits for the server to acknowledge the PSUBSCRIBE.
func (w *watch) confirm(ctx context.Context, ps *redis.PubSub) error {
	deadline := time.Now().Add(confirmTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("psubscribe: no confirmation within %v", confirmTimeout)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return fmt.Errorf("psubscribe confirmation: %w", err)
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "psubscribe" && s.Channel == w.pattern {
			return nil
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CheckKeyspaceEvents reports (never changes) a server whose notify-keyspace-events lacks what
// Watch needs: K (keyspace channel) and the generic and hash classes (g and h, or A for all).
// When the server refuses CONFIG GET the error wraps ErrCannotCheck.
func (d *DB) CheckKeyspaceEvents(ctx context.Context) error {
	const param = "notify-keyspace-events"
	res, err := d.client.ConfigGet(ctx, param).Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return fmt.Errorf("%s: %w: CONFIG GET %s: %v", d.name, ErrCannotCheck, param, err)
		}
		return fmt.Errorf("%s: CONFIG GET %s: %w", d.name, param, err)
	}
	val, ok := res[param]
	if !ok {
		return fmt.Errorf("%s: %w: CONFIG GET %s returned nothing", d.name, ErrCannotCheck, param)
	}
	if missing := missingEventFlags(val); len(missing) > 0 {
		return fmt.Errorf("%s: redis %s is %q, missing %s; Watch needs them (SONiC sets \"AKE\"); "+
			"telegen does not change server config, fix the server's redis.conf",
			d.name, param, val, strings.Join(missing, ", "))
	}
	return nil
}

// missingEventFlags lists the notify-keyspace-events flags Watch needs that val lacks.
func missingEventFlags(val string) []string {
	var missing []string
	if !strings.Contains(val, "K") {
		missing = append(missing, "K (keyspace events)")
	}
	if !strings.Contains(val, "A") {
		if !strings.Contains(val, "g") {
			missing = append(missing, "g (generic commands: del, rename)")
		}
		if !strings.Contains(val, "h") {
			missing = append(missing, "h (hash commands: hset, hdel)")
		}
	}
	return missing
}
