package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// world is an in-memory CONFIG_DB, STATE_DB and kernel, rendering what is attached as text.
// It unit-tests the reconciler's logic; the end-to-end tests prove the same against real Redis
// and real eBPF.
type world struct {
	mu        sync.Mutex
	jobs      map[string]map[string]string // CONFIG_DB TELEGEN_JOB
	globals   map[string]string
	enabled   bool
	ports     map[string]bool
	records   map[string]map[string]string // STATE_DB TELEGEN_JOB_TABLE
	results   map[string]map[string]string
	attached  map[string]*fakeRun // kernel: job id -> run
	pinned    map[string]*fakeRun // what a restarted daemon could adopt
	startErr  error
	startGate chan struct{}     // when set, Start waits for it to close
	sweepGate chan struct{}     // when set, the datapath's CleanUp waits for it to close
	sessions  map[string]string // MIRROR_SESSION name -> job id
	mirrorErr error
	maxLive   int // most attachments ever seen at once
	redisErr  error
}

func newWorld() *world {
	return &world{
		jobs:     map[string]map[string]string{},
		globals:  map[string]string{},
		enabled:  true,
		ports:    map[string]bool{"Ethernet0": true, "Ethernet4": true, "Ethernet8": true},
		records:  map[string]map[string]string{},
		results:  map[string]map[string]string{},
		attached: map[string]*fakeRun{},
		pinned:   map[string]*fakeRun{},
		sessions: map[string]string{},
	}
}

type fakeConfig struct{ w *world }

func (c fakeConfig) Job(_ context.Context, id string) (map[string]string, bool, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.w.redisErr != nil {
		return nil, false, c.w.redisErr
	}
	f, ok := c.w.jobs[id]
	return maps.Clone(f), ok, nil
}

func (c fakeConfig) JobIDs(context.Context) ([]string, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return slices.Sorted(maps.Keys(c.w.jobs)), c.w.redisErr
}

func (c fakeConfig) DeleteJob(_ context.Context, id string) error {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	delete(c.w.jobs, id)
	return c.w.redisErr
}

func (c fakeConfig) StampJob(_ context.Context, id string, f map[string]string) error {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if k, ok := c.w.jobs[id]; ok {
		maps.Copy(k, f)
	}
	return c.w.redisErr
}

func (c fakeConfig) Globals(context.Context) (jobspec.Globals, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return jobspec.GlobalsFromFields(c.w.globals)
}

func (c fakeConfig) FeatureEnabled(context.Context) (bool, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.enabled, c.w.redisErr
}

func (c fakeConfig) PortExists(_ context.Context, port string) (bool, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.ports[port], c.w.redisErr
}

type fakeState struct{ w *world }

func (s fakeState) Records(context.Context) (map[string]map[string]string, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	out := map[string]map[string]string{}
	for k, v := range s.w.records {
		out[k] = maps.Clone(v)
	}
	return out, s.w.redisErr
}

func (s fakeState) BeginRun(_ context.Context, id string, f map[string]string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.redisErr != nil {
		return s.w.redisErr
	}
	s.w.records[id] = maps.Clone(f)
	delete(s.w.results, id)
	return nil
}

func (s fakeState) UpdateRun(_ context.Context, id string, f map[string]string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.redisErr != nil {
		return s.w.redisErr
	}
	if s.w.records[id] == nil {
		s.w.records[id] = map[string]string{}
	}
	maps.Copy(s.w.records[id], f)
	return nil
}

func (s fakeState) PutResult(_ context.Context, id string, f map[string]string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.redisErr != nil {
		return s.w.redisErr
	}
	s.w.results[id] = maps.Clone(f)
	return nil
}

func (s fakeState) Prune(context.Context, int) error { return nil }

func (s fakeState) PatchResult(_ context.Context, id string, f map[string]string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.results[id] != nil {
		maps.Copy(s.w.results[id], f)
	}
	return s.w.redisErr
}

type fakeDatapath struct{ w *world }

type fakeRun struct {
	w       *world
	id, dev string
	packets uint64
	closed  bool
}

func (r *fakeRun) Interface() string { return r.dev }
func (r *fakeRun) Snapshot() (aggregate.Snapshot, error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: r.packets, Bytes: 100 * r.packets}}, nil
}
func (r *fakeRun) Finish() (aggregate.Snapshot, map[string]string, error) {
	snap, _ := r.Snapshot()
	return snap, map[string]string{"extra_field": "x"}, r.Close()
}

func (r *fakeRun) Close() error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if !r.closed {
		r.closed = true
		delete(r.w.attached, r.id)
		delete(r.w.pinned, r.id)
	}
	return nil
}

func (d fakeDatapath) Start(_ context.Context, spec jobspec.Spec, src Source) (Run, error) {
	d.w.mu.Lock()
	gate := d.w.startGate
	d.w.mu.Unlock()
	if gate != nil {
		<-gate
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.w.startErr != nil {
		return nil, d.w.startErr
	}
	if d.w.attached[spec.ID] != nil {
		return nil, fmt.Errorf("job %s attached twice", spec.ID)
	}
	run := &fakeRun{w: d.w, id: spec.ID, dev: src.Interface}
	d.w.attached[spec.ID] = run
	d.w.pinned[spec.ID] = run
	d.w.maxLive = max(d.w.maxLive, len(d.w.attached))
	return run, nil
}

func (d fakeDatapath) Adopt(_ context.Context, id string) (Run, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	run := d.w.pinned[id]
	if run == nil {
		return nil, errors.New("not found")
	}
	d.w.attached[id] = run
	return run, nil
}

func (d fakeDatapath) CleanUp(_ context.Context, keep func(string) bool) error {
	d.w.mu.Lock()
	gate := d.w.sweepGate
	d.w.mu.Unlock()
	if gate != nil {
		<-gate
	}
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	for id := range d.w.pinned {
		if !keep(id) {
			delete(d.w.pinned, id)
			delete(d.w.attached, id)
		}
	}
	return nil
}

type fakeMirror struct{ w *world }

func (m fakeMirror) Create(_ context.Context, spec jobspec.Spec) (MirrorSession, error) {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	if m.w.mirrorErr != nil {
		return MirrorSession{}, m.w.mirrorErr
	}
	name := jobspec.MirrorSessionName(spec.ID)
	m.w.sessions[name] = spec.ID
	return MirrorSession{Session: name, Source: Source{Interface: "sink0", ERSPANSessionID: 7}}, nil
}

func (m fakeMirror) Delete(_ context.Context, id string) error {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	delete(m.w.sessions, jobspec.MirrorSessionName(id))
	return nil
}

func (m fakeMirror) CleanUp(_ context.Context, keep func(string) bool) error {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	for name, id := range m.w.sessions {
		if !keep(id) {
			delete(m.w.sessions, name)
		}
	}
	return nil
}

// render is the whole observable state as sorted lines, for cmp-style comparisons.
func (w *world) render() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lines []string
	for id, f := range w.jobs {
		lines = append(lines, fmt.Sprintf("config %s port=%s", id, f["port"]))
	}
	for id, f := range w.records {
		lines = append(lines, strings.TrimSpace(fmt.Sprintf("state %s %s %s", id, f["status"], f["reason"])))
	}
	for id, run := range w.attached {
		lines = append(lines, fmt.Sprintf("attached %s %s", id, run.dev))
	}
	for name, id := range w.sessions {
		lines = append(lines, fmt.Sprintf("session %s job=%s", name, id))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func (w *world) put(id string, fields ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := map[string]string{"span_method": "direct"}
	for i := 0; i+1 < len(fields); i += 2 {
		f[fields[i]] = fields[i+1]
	}
	w.jobs[id] = f
}

func (w *world) status(id string) (string, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.records[id]["status"], w.records[id]["reason"]
}

type harness struct {
	t    *testing.T
	w    *world
	r    *Reconciler
	stop func()
}

func start(t *testing.T, w *world) *harness {
	t.Helper()
	return startWith(t, w, nil, time.Second)
}

func startWith(t *testing.T, w *world, mirror Mirror, opTimeout time.Duration) *harness {
	t.Helper()
	return startOpts(t, w, mirror, Options{StatsInterval: 20 * time.Millisecond, ResyncInterval: time.Hour,
		SweepInterval: time.Hour, OpTimeout: opTimeout})
}

func startOpts(t *testing.T, w *world, mirror Mirror, opt Options) *harness {
	t.Helper()
	r := New(fakeConfig{w}, fakeState{w}, fakeDatapath{w}, mirror, slog.New(slog.NewTextHandler(io.Discard, nil)), opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	h := &harness{t: t, w: w, r: r}
	h.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(h.stop)
	return h
}

// eventually waits until the rendered world equals want.
func (h *harness) eventually(want string) {
	h.t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(want), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	want = strings.Join(lines, "\n")
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = h.w.render(); got == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("world never became\n%s\n\nlast seen:\n%s", want, got)
}

func (h *harness) put(id string, fields ...string) {
	h.w.put(id, fields...)
	h.r.Enqueue(id)
}

func (h *harness) del(id string) {
	h.w.mu.Lock()
	delete(h.w.jobs, id)
	h.w.mu.Unlock()
	h.r.Enqueue(id)
}

func TestAdmissionTwoSlots(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	for _, id := range []string{"a", "b", "c"} {
		w.put(id, "port", "Ethernet0", "duration_sec", "60")
	}
	for _, id := range []string{"a", "b", "c"} {
		h.r.Enqueue(id)
	}
	h.eventually(`
attached a Ethernet0
attached b Ethernet0
config a port=Ethernet0
config b port=Ethernet0
state a running 
state b running 
state c rejected concurrency_limit`)

	h.del("a")
	h.eventually(`
attached b Ethernet0
config b port=Ethernet0
state a stopped 
state b running 
state c rejected concurrency_limit`)
	if w.results["a"]["packets_total"] != "0" || w.results["a"]["totals_exact"] != "true" {
		t.Errorf("result of a = %v", w.results["a"])
	}
	// A freed slot never revives a rejected job; re-writing its key starts a new run.
	h.put("c", "port", "Ethernet4", "duration_sec", "60")
	h.eventually(`
attached b Ethernet0
attached c Ethernet4
config b port=Ethernet0
config c port=Ethernet4
state a stopped 
state b running 
state c running `)
}

func TestQueueFIFO(t *testing.T) {
	w := newWorld()
	w.globals["max_jobs_queue"] = "2"
	h := start(t, w)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		h.put(id, "port", "Ethernet0", "duration_sec", "60")
	}
	h.eventually(`
attached a Ethernet0
attached b Ethernet0
config a port=Ethernet0
config b port=Ethernet0
config c port=Ethernet0
config d port=Ethernet0
state a running 
state b running 
state c pending 
state d pending 
state e rejected concurrency_limit`)
	h.del("b")
	h.eventually(`
attached a Ethernet0
attached c Ethernet0
config a port=Ethernet0
config c port=Ethernet0
config d port=Ethernet0
state a running 
state b stopped 
state c running 
state d pending 
state e rejected concurrency_limit`)
	// Deleting a pending job ends it without it ever running.
	h.del("d")
	h.eventually(`
attached a Ethernet0
attached c Ethernet0
config a port=Ethernet0
config c port=Ethernet0
state a running 
state b stopped 
state c running 
state d stopped 
state e rejected concurrency_limit`)
	if w.maxLive > 2 {
		t.Errorf("%d jobs attached at once", w.maxLive)
	}
}

func TestInvalidAndFailedStart(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	h.put("badport", "port", "Ethernet99")
	h.put("baddscp", "port", "Ethernet0", "dscp@", "64")
	h.put("unknown", "port", "Ethernet0", "colour", "blue")
	h.eventually(`
state baddscp failed invalid: dscp@: item "64": must be an integer 0-63
state badport failed invalid: port: "Ethernet99" is not a port of CONFIG_DB PORT
state unknown failed invalid: colour: unknown field`)

	w.mu.Lock()
	w.startErr = errors.New("no such netdev")
	w.mu.Unlock()
	h.put("x", "port", "Ethernet0")
	h.eventually(`
state baddscp failed invalid: dscp@: item "64": must be an integer 0-63
state badport failed invalid: port: "Ethernet99" is not a port of CONFIG_DB PORT
state unknown failed invalid: colour: unknown field
state x failed attach_failed: no such netdev`)
}

func TestDoneAtDuration(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	begin := time.Now()
	h.put("a", "port", "Ethernet0", "duration_sec", "1")
	h.eventually(`
attached a Ethernet0
config a port=Ethernet0
state a running `)
	w.mu.Lock()
	w.attached["a"].packets = 7
	expires := w.jobs["a"]["expires_at"]
	w.mu.Unlock()
	if expires == "" {
		t.Error("expires_at was not stamped into the key")
	}
	h.eventually(`state a done `)
	if took := time.Since(begin); took < time.Second || took > 2*time.Second {
		t.Errorf("job took %v, want 1 s", took)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.results["a"]["packets_total"]; got != "7" {
		t.Errorf("result packets_total = %q, want 7", got)
	}
	if got := w.results["a"]["extra_field"]; got != "x" {
		t.Errorf("result extra_field = %q, want the run's end-only field", got)
	}
	if got := w.records["a"]["finished_at"]; got == "" {
		t.Error("finished_at not set")
	}
}

func TestExpiredKeyFromReload(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	h.put("old", "port", "Ethernet0", "expires_at", jobspec.FormatTime(time.Now().Add(-time.Minute)))
	h.eventually(`state old failed expired`)
}

func TestFeatureDisable(t *testing.T) {
	w := newWorld()
	w.globals["max_jobs_queue"] = "1"
	h := start(t, w)
	h.put("a", "port", "Ethernet0", "duration_sec", "60")
	h.put("b", "port", "Ethernet0", "duration_sec", "60")
	h.put("c", "port", "Ethernet0", "duration_sec", "60")
	h.eventually(`
attached a Ethernet0
attached b Ethernet0
config a port=Ethernet0
config b port=Ethernet0
config c port=Ethernet0
state a running 
state b running 
state c pending `)
	w.mu.Lock()
	w.enabled = false
	w.mu.Unlock()
	h.r.SettingsChanged()
	h.eventually(`
state a stopped feature_disabled
state b stopped feature_disabled
state c stopped feature_disabled`)
	h.put("d", "port", "Ethernet0")
	h.eventually(`
state a stopped feature_disabled
state b stopped feature_disabled
state c stopped feature_disabled
state d rejected feature_disabled`)
	w.mu.Lock()
	w.enabled = true
	w.mu.Unlock()
	h.r.SettingsChanged()
	h.put("d", "port", "Ethernet0", "duration_sec", "60")
	h.eventually(`
attached d Ethernet0
config d port=Ethernet0
state a stopped feature_disabled
state b stopped feature_disabled
state c stopped feature_disabled
state d running `)
}

func TestRedisOutageKeepsDeadline(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	h.put("a", "port", "Ethernet0", "duration_sec", "1")
	h.eventually(`
attached a Ethernet0
config a port=Ethernet0
state a running `)
	w.mu.Lock()
	w.redisErr = errors.New("connection refused")
	w.mu.Unlock()
	// The kernel side ends on time even though nothing can be recorded.
	deadline := time.Now().Add(3 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.attached)
		w.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job still attached while Redis is down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.mu.Lock()
	w.redisErr = nil
	w.mu.Unlock()
	h.eventually(`state a done `)
}

func TestRecoveryAfterCrash(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	h.put("a", "port", "Ethernet0", "duration_sec", "60")
	h.put("b", "port", "Ethernet4", "duration_sec", "60")
	h.eventually(`
attached a Ethernet0
attached b Ethernet4
config a port=Ethernet0
config b port=Ethernet4
state a running 
state b running `)
	// A crash: the process is gone without tearing down; the kernel keeps a's pins only.
	h.r.crashed.Store(true)
	h.stop()
	w.mu.Lock()
	w.attached = map[string]*fakeRun{}
	delete(w.pinned, "b")
	w.pinned["orphan"] = &fakeRun{w: w, id: "orphan"}
	w.mu.Unlock()

	h2 := start(t, w)
	h2.eventually(`
attached a Ethernet0
config a port=Ethernet0
state a running 
state b failed daemon_restart`)
	w.mu.Lock()
	_, orphan := w.pinned["orphan"]
	w.mu.Unlock()
	if orphan {
		t.Error("orphaned pin survived recovery")
	}
}

func TestMirrorSessions(t *testing.T) {
	w := newWorld()
	h := startWith(t, w, fakeMirror{w}, time.Second)
	h.w.put("e", "port", "Ethernet0", "span_method", "erspan", "duration_sec", "60")
	h.r.Enqueue("e")
	h.eventually(`
attached e sink0
config e port=Ethernet0
session telegen_e job=e
state e running`)
	w.mu.Lock()
	if got := w.records["e"]["mirror_session"]; got != "telegen_e" {
		t.Errorf("mirror_session = %q", got)
	}
	w.mu.Unlock()
	h.del("e")
	h.eventually(`state e stopped`)

	w.mu.Lock()
	w.mirrorErr = errors.New("orchagent refused SPAN to CPU")
	w.mu.Unlock()
	h.w.put("s", "port", "Ethernet0", "span_method", "span")
	h.r.Enqueue("s")
	h.eventually(`
state e stopped
state s failed mirror_failed: orchagent refused SPAN to CPU`)
}

func TestNoMirrorConfigured(t *testing.T) {
	w := newWorld()
	h := start(t, w)
	h.w.put("s", "port", "Ethernet0", "span_method", "span")
	h.r.Enqueue("s")
	h.eventually(`state s failed mirror_failed: span_method span needs mirror sessions, which this telegend does not program; use span_method direct`)
}

// closeLater closes gate when the test ends, unless the test did.
func closeLater(t *testing.T, gate chan struct{}) {
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
}

// A datapath that hangs must not hold a slot past the bound, and what it makes later is undone.
func TestHungLaunch(t *testing.T) {
	w := newWorld()
	gate := make(chan struct{})
	w.startGate = gate
	h := startWith(t, w, fakeMirror{w}, 200*time.Millisecond)
	h.w.put("e", "port", "Ethernet0", "span_method", "erspan")
	h.r.Enqueue("e")
	h.eventually(`
config e port=Ethernet0
session telegen_e job=e
state e starting`)
	closeLater(t, gate)
	// Until the hung setup returns, the session it made is still there.
	h.eventually(`
session telegen_e job=e
state e failed attach_failed: setup did not finish within 200ms`)
	w.mu.Lock()
	w.startGate = nil
	w.mu.Unlock()
	close(gate) // the hung Start completes now; its attachment and session must be undone
	h.put("f", "port", "Ethernet4", "span_method", "direct", "duration_sec", "60")
	h.eventually(`
attached f Ethernet4
config f port=Ethernet4
state e failed attach_failed: setup did not finish within 200ms
state f running`)
}

// A setup that hangs past its bound and reports only after the key was deleted and written
// again belongs to the old job: it is not taken for the new job's (whose launch has its own
// number), and undoing it leaves alone the mirror session the new job now has under the same
// name.
func TestLateLaunchAfterRewrite(t *testing.T) {
	w := newWorld()
	gate := make(chan struct{})
	w.startGate = gate
	h := startWith(t, w, fakeMirror{w}, 200*time.Millisecond)
	closeLater(t, gate)
	h.put("e", "port", "Ethernet0", "span_method", "erspan", "duration_sec", "60")
	// Failed, its key removed; the session stays while the hung setup may still use it.
	h.eventually(`
session telegen_e job=e
state e failed attach_failed: setup did not finish within 200ms`)
	w.mu.Lock()
	w.startGate = nil
	w.mu.Unlock()
	h.put("e", "port", "Ethernet0", "span_method", "erspan", "duration_sec", "60")
	running := `
attached e sink0
config e port=Ethernet0
session telegen_e job=e
state e running`
	h.eventually(running)
	close(gate) // the old setup returns now (its Start fails: the port's job is attached)
	time.Sleep(100 * time.Millisecond)
	h.eventually(running)
}

// A sweep that hangs past its bound runs on; a job launched meanwhile is not one of the
// orphans it was sent to remove, whenever it gets to them.
func TestHungSweepSparesNewJobs(t *testing.T) {
	w := newWorld()
	h := startOpts(t, w, noMirror{}, Options{StatsInterval: 20 * time.Millisecond, ResyncInterval: time.Hour,
		SweepInterval: 100 * time.Millisecond, OpTimeout: 100 * time.Millisecond})
	h.put("first", "port", "Ethernet4", "duration_sec", "60") // start-up recovery is over once it runs
	h.eventually(`
attached first Ethernet4
config first port=Ethernet4
state first running`)
	gate := make(chan struct{})
	closeLater(t, gate)
	w.mu.Lock()
	w.sweepGate = gate
	w.mu.Unlock()
	time.Sleep(300 * time.Millisecond) // sweeps have started and hang, "a" not in their snapshots
	h.put("a", "port", "Ethernet0", "duration_sec", "60")
	running := `
attached a Ethernet0
attached first Ethernet4
config a port=Ethernet0
config first port=Ethernet4
state a running
state first running`
	h.eventually(running)
	w.mu.Lock()
	w.sweepGate = nil
	w.mu.Unlock()
	close(gate) // the hung sweeps go on now
	time.Sleep(200 * time.Millisecond)
	h.eventually(running)
}

// Deleting a job while it is being set up stops it once the setup reports back.
func TestDeleteWhileLaunching(t *testing.T) {
	w := newWorld()
	gate := make(chan struct{})
	w.startGate = gate
	h := start(t, w)
	closeLater(t, gate)
	h.put("a", "port", "Ethernet0")
	h.eventually(`
config a port=Ethernet0
state a starting`)
	h.del("a")
	time.Sleep(50 * time.Millisecond)
	close(gate)
	h.eventually(`state a stopped`)
}
