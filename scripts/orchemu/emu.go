package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// Timing of the emulator's loop.
const (
	batchWindow    = 5 * time.Millisecond // events closer than this are processed together
	tickInterval   = time.Second          // routes and netdevs are re-resolved this often
	resyncInterval = 5 * time.Second      // a full CONFIG_DB read catches anything missed
)

// kernelApplier is what the emulator needs of the kernel (a fake in unit tests).
type kernelApplier interface {
	Apply(kState) error
}

// emu follows CONFIG_DB, keeps the emulated orchagent's state and publishes STATE_DB.
type emu struct {
	log       *slog.Logger
	cfg       *sonicdb.DB
	state     *sonicdb.DB
	orch      *orch
	env       env
	kernel    kernelApplier
	view      map[string]map[string]bool // table -> keys the orch has seen
	published map[string]map[string]row  // STATE_DB entries written, by table and key
	kernelErr string
}

var followed = []string{cfgPort, cfgMirrorSession, cfgACLTable, cfgACLRule}

var stateTables = []string{stateMirrorSession, stateACLTable, stateACLRule}

func newEmu(log *slog.Logger, cfg, state *sonicdb.DB, o *orch, e env, k kernelApplier) *emu {
	m := &emu{log: log, cfg: cfg, state: state, orch: o, env: e, kernel: k,
		view: map[string]map[string]bool{}, published: map[string]map[string]row{}}
	for _, t := range followed {
		m.view[t] = map[string]bool{}
	}
	for _, t := range stateTables {
		m.published[t] = map[string]row{}
	}
	return m
}

// start takes over STATE_DB: ERSPAN session ids published by an earlier run are kept for the
// same sessions, and every entry of the emulator's tables is removed (orchagent rewrites its
// state when it starts).
func (m *emu) start(ctx context.Context) error {
	prev, err := m.state.GetTable(ctx, stateMirrorSession)
	if err != nil {
		return err
	}
	for name, f := range prev {
		var id uint32
		if _, err := fmt.Sscan(f[fieldSessionID], &id); err == nil && id >= 1 && id <= maxSessionID {
			m.orch.reserved[name] = id
		}
	}
	for _, t := range stateTables {
		keys, err := m.state.Keys(ctx, t)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := m.state.DelEntry(ctx, t, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// run follows CONFIG_DB until ctx ends. ready is called once, after the first full pass.
func (m *emu) run(ctx context.Context, ready func()) error {
	patterns := make([]string, len(followed))
	for i, t := range followed {
		patterns[i] = fmt.Sprintf("__keyspace@%d__:%s%s*", m.cfg.ID(), t, m.cfg.Separator())
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := m.follow(ctx, patterns, ready)
		if ctx.Err() != nil {
			break
		}
		m.log.Warn("CONFIG_DB subscription lost; resubscribing", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return ctx.Err()
}

func (m *emu) follow(ctx context.Context, patterns []string, ready func()) error {
	ps := m.cfg.Client().PSubscribe(ctx, patterns...)
	defer ps.Close()
	for range patterns {
		if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
			return fmt.Errorf("psubscribe: %w", err)
		}
	}
	if err := m.resync(ctx); err != nil {
		return err
	}
	m.pass(ctx)
	if ready != nil {
		ready()
		ready = nil
	}
	msgs := ps.Channel(redis.WithChannelHealthCheckInterval(time.Second))
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	lastSync := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if time.Since(lastSync) >= resyncInterval {
				if err := m.resync(ctx); err != nil {
					return err
				}
				lastSync = time.Now()
			}
			m.pass(ctx)
		case msg, ok := <-msgs:
			if !ok {
				return errors.New("subscription closed")
			}
			m.event(ctx, msg)
			m.drain(ctx, msgs)
			m.pass(ctx)
		}
	}
}

// drain takes the events that follow within batchWindow, so a burst is one pass.
func (m *emu) drain(ctx context.Context, msgs <-chan *redis.Message) {
	t := time.NewTimer(batchWindow)
	defer t.Stop()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			m.event(ctx, msg)
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// event turns a keyspace notification into an operation, as SubscriberStateTable does: "del"
// (or an expiry) is a DEL; anything else re-reads the entry, and an entry already gone is
// skipped (its own "del" event follows).
func (m *emu) event(ctx context.Context, msg *redis.Message) {
	_, key, ok := strings.Cut(msg.Channel, ":")
	if !ok {
		return
	}
	table, k, ok := strings.Cut(key, m.cfg.Separator())
	if !ok {
		return
	}
	switch msg.Payload {
	case "del", "expired", "evicted":
		m.op(op{table: table, key: k})
		return
	}
	f, exists, err := m.cfg.GetEntry(ctx, table, k)
	if err != nil {
		m.log.Warn("reading CONFIG_DB entry failed", "table", table, "key", k, "err", err)
		return
	}
	if exists {
		m.op(op{table: table, key: k, fields: nonNil(f)})
	}
}

func nonNil(f map[string]string) row {
	if f == nil {
		return row{}
	}
	return f
}

func (m *emu) op(x op) {
	if x.fields == nil {
		delete(m.view[x.table], x.key)
	} else {
		m.view[x.table][x.key] = true
	}
	m.orch.apply(x)
}

// resync reads every followed table in full: entries present are SETs (a session that exists
// unchanged is not touched), entries the orch knows but CONFIG_DB lacks are DELs.
func (m *emu) resync(ctx context.Context) error {
	for _, t := range followed {
		all, err := m.cfg.GetTable(ctx, t)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(m.view[t])) {
			if _, ok := all[k]; !ok {
				m.op(op{table: t, key: k})
			}
		}
		for _, k := range slices.Sorted(maps.Keys(all)) {
			m.op(op{table: t, key: k, fields: nonNil(all[k])})
		}
	}
	return nil
}

// pass reconciles, then publishes STATE_DB and converges the kernel.
func (m *emu) pass(ctx context.Context) {
	st := m.orch.reconcile(m.env)
	// The kernel first, so that STATE_DB reports a session active once it can copy; a
	// kernel failure is logged (a real ASIC's SAI error would be), not retried differently.
	err := m.kernel.Apply(st.kernel)
	if msg := errString(err); msg != m.kernelErr {
		m.kernelErr = msg
		if err != nil {
			m.log.Error("realizing mirror sessions in the kernel failed", "err", err)
		}
	}
	for _, t := range stateTables {
		m.publish(ctx, t, st.db[t])
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (m *emu) publish(ctx context.Context, table string, want map[string]row) {
	have := m.published[table]
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if maps.Equal(have[k], want[k]) {
			continue
		}
		if err := m.state.SetEntry(ctx, table, k, want[k]); err != nil {
			m.log.Warn("writing STATE_DB failed", "table", table, "key", k, "err", err)
			continue
		}
		have[k] = want[k]
	}
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[k]; ok {
			continue
		}
		if err := m.state.DelEntry(ctx, table, k); err != nil {
			m.log.Warn("removing STATE_DB entry failed", "table", table, "key", k, "err", err)
			continue
		}
		delete(have, k)
	}
}

// parseMAC parses a MAC address such as DEVICE_METADATA|localhost's mac.
func parseMAC(s string) ([6]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return [6]byte{}, fmt.Errorf("not a 48-bit MAC address: %q", s)
	}
	return [6]byte(hw), nil
}
