// Package clienttest owns a stand-in for telegend used by the front-ends' unit tests: on a real
// redis-server it answers TELEGEN_JOB writes and deletes with STATE_DB verdicts, so that the
// verdict-wait logic can be tested without the kernel. The real daemon is tested in pkg/e2e.
package clienttest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// SONiC's DB numbers in testenv's layout.
const (
	ConfigDB = 4
	StateDB  = 6
)

// FakeDaemon admits up to Max jobs like telegend: a new key gets a running record (or rejected
// with concurrency_limit, and its key deleted), a deleted key of a live job gets stopped.
type FakeDaemon struct {
	// Decide, when set, chooses the record fields for a new key instead of the admission rule
	// (status, reason, ...); returning nil leaves the key unanswered.
	Decide func(id string, fields map[string]string) map[string]string

	t      testing.TB
	config *redis.Client
	state  *redis.Client
	max    int

	mu   sync.Mutex
	live map[string]bool
	seen []string // ids in the order their keys were answered
}

// StartFakeDaemon answers keyspace events of r's CONFIG_DB until the test ends. Set Decide
// before any key is written.
func StartFakeDaemon(t testing.TB, r *testenv.Redis, max int) *FakeDaemon {
	t.Helper()
	d := &FakeDaemon{t: t, config: r.Client(t, ConfigDB), state: r.Client(t, StateDB), max: max, live: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	ps := d.config.PSubscribe(ctx, "__keyspace@4__:TELEGEN_JOB|*")
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("fake daemon: psubscribe: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ps.Channel() {
			id := strings.TrimPrefix(msg.Channel, "__keyspace@4__:TELEGEN_JOB|")
			d.handle(ctx, id, msg.Payload)
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = ps.Close()
		<-done
	})
	return d
}

// Seen lists the ids answered so far, in order.
func (d *FakeDaemon) Seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

func (d *FakeDaemon) handle(ctx context.Context, id, event string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	nowT := time.Now()
	now := jobspec.FormatTime(nowT)
	switch event {
	case "hset":
		if d.live[id] {
			return // a stamp or a rewrite of an admitted job
		}
		fields, err := d.config.HGetAll(ctx, "TELEGEN_JOB|"+id).Result()
		if err != nil || len(fields) == 0 {
			return
		}
		rec := map[string]string{}
		if d.Decide != nil {
			rec = d.Decide(id, fields)
			if rec == nil {
				return
			}
		} else if len(d.live) < d.max {
			dur, _ := strconv.Atoi(fields["duration_sec"])
			rec = map[string]string{
				"status": "running", "interface": fields["port"], "slot": strconv.Itoa(len(d.live)),
				"started_at": now, "expires_at": jobspec.FormatTime(nowT.Add(time.Duration(dur) * time.Second)),
			}
		} else {
			rec = map[string]string{"status": "rejected", "reason": "concurrency_limit", "finished_at": now}
		}
		rec["created_at"] = now
		rec["updated_at"] = now
		if _, ok := rec["packets_total"]; !ok {
			rec["packets_total"], rec["bytes_total"] = "0", "0"
		}
		d.seen = append(d.seen, id)
		_, _ = d.state.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, "TELEGEN_JOB_TABLE|"+id, "TELEGEN_RESULT_TABLE|"+id)
			p.HSet(ctx, "TELEGEN_JOB_TABLE|"+id, rec)
			return nil
		})
		st := jobspec.Status(rec["status"])
		if st.Terminal() {
			_ = d.config.Del(ctx, "TELEGEN_JOB|"+id).Err()
		} else if st != "" {
			d.live[id] = true
		}
	case "del":
		if !d.live[id] {
			return
		}
		delete(d.live, id)
		// The result first, then the terminal status, as telegend publishes them.
		_ = d.state.HSet(ctx, "TELEGEN_RESULT_TABLE|"+id, "status", "stopped", "window_sec", "1.000",
			"packets_total", "0", "bytes_total", "0", "totals_exact", "true").Err()
		_ = d.state.HSet(ctx, "TELEGEN_JOB_TABLE|"+id, "status", "stopped", "finished_at", now, "slot", "").Err()
	}
}
