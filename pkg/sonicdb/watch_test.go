package sonicdb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

const eventTimeout = 5 * time.Second

type watchEvent struct {
	synced bool
	keys   []string // Synced
	key    string   // Changed
}

func (e watchEvent) String() string {
	if e.synced {
		return fmt.Sprintf("synced%v", e.keys)
	}
	return "changed " + e.key
}

// recorder is a WatchHandler that queues what it is told.
type recorder struct {
	events chan watchEvent
	errs   atomic.Int64
}

func newRecorder() *recorder { return &recorder{events: make(chan watchEvent, 10000)} }

func (r *recorder) Synced(keys []string) { r.events <- watchEvent{synced: true, keys: keys} }
func (r *recorder) Changed(key string)   { r.events <- watchEvent{key: key} }
func (r *recorder) WatchError(error)     { r.errs.Add(1) }

func (r *recorder) next(t *testing.T) watchEvent {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(eventTimeout):
		t.Fatalf("no watch event within %v", eventTimeout)
		return watchEvent{}
	}
}

// expect waits for an event satisfying ok, failing on timeout; other events are skipped.
func (r *recorder) expect(t *testing.T, what string, ok func(watchEvent) bool) watchEvent {
	t.Helper()
	deadline := time.After(eventTimeout)
	var skipped []watchEvent
	for {
		select {
		case e := <-r.events:
			if ok(e) {
				return e
			}
			skipped = append(skipped, e)
		case <-deadline:
			t.Fatalf("no %s within %v (saw %v)", what, eventTimeout, skipped)
			return watchEvent{}
		}
	}
}

// quiet fails if an event arrives within d.
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-r.events:
		t.Fatalf("unexpected event %v", e)
	case <-time.After(d):
	}
}

// startWatch runs Watch in a goroutine; stop cancels it and checks it returned ctx's error.
func startWatch(t *testing.T, db *DB, table string, h WatchHandler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- db.Watch(ctx, table, h) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(eventTimeout):
			t.Errorf("Watch did not return within %v of cancel", eventTimeout)
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestWatchSnapshotThenEvents(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	other := openDB(t, r, "STATE_DB")
	raw := r.Client(t, 4)
	ctx := testCtx(t)

	for _, k := range []string{"b", "a"} {
		if err := db.SetEntry(ctx, "TELEGEN_JOB", k, map[string]string{"port": "Ethernet0"}); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	startWatch(t, db, "telegen_job", rec)
	if e := rec.next(t); !e.synced || !slices.Equal(e.keys, []string{"a", "b"}) {
		t.Fatalf("first event = %v, want synced[a b]", e)
	}

	steps := []struct {
		name  string
		write func() error
		key   string
	}{
		{"set", func() error { return db.SetEntry(ctx, "TELEGEN_JOB", "c", map[string]string{"x": "1"}) }, "c"},
		{"mod", func() error { return db.ModEntry(ctx, "TELEGEN_JOB", "a", map[string]string{"x": "2"}) }, "a"},
		{"hdel", func() error { return raw.HDel(ctx, "TELEGEN_JOB|a", "x").Err() }, "a"},
		{"del", func() error { return db.DelEntry(ctx, "TELEGEN_JOB", "b") }, "b"},
		{"key with separator", func() error { return raw.HSet(ctx, "TELEGEN_JOB|x|y", "f", "v").Err() }, "x|y"},
	}
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if e := rec.next(t); e.synced || e.key != s.key {
			t.Fatalf("%s: event = %v, want changed %s", s.name, e, s.key)
		}
		// A SetEntry replace may add an hdel event for the same key; drain same-key repeats.
		for drained := false; !drained; {
			select {
			case e := <-rec.events:
				if e.synced || e.key != s.key {
					t.Fatalf("%s: extra event %v", s.name, e)
				}
			case <-time.After(50 * time.Millisecond):
				drained = true
			}
		}
	}

	// Neighbouring tables, other DBs and plain keys stay silent.
	for _, write := range []func() error{
		func() error { return db.SetEntry(ctx, "TELEGEN_JOBX", "a", map[string]string{"f": "v"}) },
		func() error { return db.SetEntry(ctx, "TELEGEN", "global", map[string]string{"f": "v"}) },
		func() error { return other.SetEntry(ctx, "TELEGEN_JOB", "a", map[string]string{"f": "v"}) },
		func() error { return raw.Set(ctx, "TELEGEN_JOB", "v", 0).Err() },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	rec.quiet(t, 200*time.Millisecond)
}

// TestWatchSubscribesBeforeListing races a writer against Watch's start: every key written must
// reach the handler, in the Synced listing or as a Changed event. Listing before subscribing
// would lose the keys written in between.
func TestWatchSubscribesBeforeListing(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	ctx := testCtx(t)

	const n = 300
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if err := db.SetEntry(ctx, "RACE", fmt.Sprintf("k%03d", i), map[string]string{"i": "x"}); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	time.Sleep(2 * time.Millisecond) // let some keys predate the watch
	rec := newRecorder()
	startWatch(t, db, "RACE", rec)

	seen := make(map[string]bool)
	e := rec.next(t)
	if !e.synced {
		t.Fatalf("first event = %v, want synced", e)
	}
	for _, k := range e.keys {
		seen[k] = true
	}
	predated := len(e.keys)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	for len(seen) < n {
		e := rec.next(t)
		if e.synced {
			t.Fatalf("unexpected resync %v", e)
		}
		seen[e.key] = true
	}
	t.Logf("%d of %d keys were in the Synced listing", predated, n)
}

func TestWatchGlobTable(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "APPL_DB")
	ctx := testCtx(t)

	rec := newRecorder()
	startWatch(t, db, "T*[x]", rec)
	if e := rec.next(t); !e.synced || len(e.keys) != 0 {
		t.Fatalf("first event = %v, want synced[]", e)
	}
	if err := db.SetEntry(ctx, "TAB[x]", "decoy", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SetEntry(ctx, "TX", "decoy", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SetEntry(ctx, "T*[x]", "k", nil); err != nil {
		t.Fatal(err)
	}
	if e := rec.next(t); e.synced || e.key != "k" {
		t.Fatalf("event = %v, want changed k (APPL_DB separator ':')", e)
	}
	rec.quiet(t, 100*time.Millisecond)
}

func TestWatchArgs(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("testdata/database_config.json")
	if err != nil {
		t.Fatal(err)
	}
	db, err := cfg.Open("CONFIG_DB")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Watch(t.Context(), "T", nil); err == nil {
		t.Error("nil handler accepted")
	}
	if err := db.Watch(t.Context(), "", WatchFuncs{}); err == nil {
		t.Error("empty table accepted")
	}
	// No server at all: Watch keeps retrying until ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var errs atomic.Int64
	err = db.Watch(ctx, "T", WatchFuncs{OnError: func(error) { errs.Add(1) }})
	if !errors.Is(err, context.DeadlineExceeded) || errs.Load() == 0 {
		t.Errorf("Watch without server = %v after %d errors", err, errs.Load())
	}
}

// TestWatchRedisRestart restarts the server under a running Watch: it must resync with a full
// listing and keep delivering events, and leave no goroutine behind once cancelled. Not
// parallel, for the goroutine count.
func TestWatchRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	ctx := testCtx(t)

	if err := db.SetEntry(ctx, "TELEGEN_JOB", "k1", map[string]string{"f": "1"}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	rec := newRecorder()
	stop := startWatch(t, db, "TELEGEN_JOB", rec)
	if e := rec.next(t); !e.synced || !slices.Equal(e.keys, []string{"k1"}) {
		t.Fatalf("first event = %v, want synced[k1]", e)
	}

	// Graceful restart: data kept through dump.rdb.
	r.Stop(t)
	time.Sleep(200 * time.Millisecond) // Watch retries against a dead socket meanwhile
	r.Start(t)
	rec.expect(t, "resync with k1", func(e watchEvent) bool {
		return e.synced && slices.Equal(e.keys, []string{"k1"})
	})
	if rec.errs.Load() == 0 {
		t.Error("WatchError not called for the lost connection")
	}
	if err := db.SetEntry(ctx, "TELEGEN_JOB", "k2", map[string]string{"f": "2"}); err != nil {
		t.Fatal(err)
	}
	if e := rec.next(t); e.synced || e.key != "k2" {
		t.Fatalf("after restart event = %v, want changed k2", e)
	}

	// Crash: k2 was never saved, so the resync lists only k1 — the handler learns k2 is gone.
	r.Kill(t)
	r.Start(t)
	rec.expect(t, "resync without k2", func(e watchEvent) bool {
		return e.synced && slices.Equal(e.keys, []string{"k1"})
	})
	if err := db.DelEntry(ctx, "TELEGEN_JOB", "k1"); err != nil {
		t.Fatal(err)
	}
	if e := rec.next(t); e.synced || e.key != "k1" {
		t.Fatalf("after crash event = %v, want changed k1", e)
	}

	stop()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before Watch, %d after it returned:\n%s",
				before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchHungServer freezes the server (SIGSTOP): the connection stays open but silent, and
// Watch must notice through its PING health check, then resync once the server resumes.
func TestWatchHungServer(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	ctx := testCtx(t)

	if err := db.SetEntry(ctx, "T", "k1", nil); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startWatch(t, db, "T", rec)
	if e := rec.next(t); !e.synced {
		t.Fatalf("first event = %v, want synced", e)
	}
	pid := r.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	start := time.Now()
	for rec.errs.Load() == 0 {
		if time.Since(start) > 2*healthInterval+2*time.Second {
			t.Fatalf("hung server not noticed within %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("hung server noticed after %v", time.Since(start).Round(time.Millisecond))
	resume()
	rec.expect(t, "resync", func(e watchEvent) bool { return e.synced && slices.Equal(e.keys, []string{"k1"}) })
	if err := db.SetEntry(ctx, "T", "k2", nil); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, "changed k2", func(e watchEvent) bool { return !e.synced && e.key == "k2" })
}

// TestWatchIdle keeps a healthy watch idle across several health-check PINGs: no false alarm,
// and events still arrive.
func TestWatchIdle(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "STATE_DB")
	ctx := testCtx(t)

	rec := newRecorder()
	startWatch(t, db, "T", rec)
	if e := rec.next(t); !e.synced {
		t.Fatalf("first event = %v, want synced", e)
	}
	rec.quiet(t, 3*healthInterval+healthInterval/2)
	if n := rec.errs.Load(); n != 0 {
		t.Fatalf("%d watch errors on an idle, healthy server", n)
	}
	if err := db.SetEntry(ctx, "T", "k", nil); err != nil {
		t.Fatal(err)
	}
	if e := rec.next(t); e.synced || e.key != "k" {
		t.Fatalf("event = %v, want changed k", e)
	}
}
