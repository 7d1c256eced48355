package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

type phase int

const (
	phasePending phase = iota // queued for a slot
	phaseRunning              // attached (status starting or running)
	phaseEnded                // verdict decided; being published, then forgotten
)

// job is the reconciler's memory of one run of a job id. Only the loop goroutine touches it.
type job struct {
	id         string
	spec       jobspec.Spec
	phase      phase
	status     jobspec.Status
	reason     string
	slot       int // -1 when the job holds no slot
	run        Run
	session    string // MIRROR_SESSION the job owns, or ""
	mirrorNote string // how the session deviates from the ask, e.g. no ACL pre-filter
	createdAt  time.Time

	launching      bool      // a launch goroutine is setting the job up
	gen            uint64    // its launch's number (unique in the process), so a late launch is recognised
	launchDeadline time.Time // the launch is given up after this
	startedAt      time.Time
	expiresAt      time.Time
	endedAt        time.Time

	snap        aggregate.Snapshot // live while running, final once ended
	otelExport  map[string]any     // the result's otel_export as it stood at the end
	extra       map[string]string  // result fields only known at the end (capture file)
	totalsExact bool               // counters are the kernel's complete figures for the window
	hasResult   bool               // the run produced figures worth a TELEGEN_RESULT_TABLE entry

	begun         bool // this run's TELEGEN_JOB_TABLE record has been (re)created
	dirty         bool // the record lags memory
	resultWritten bool
	stamped       bool // expires_at is in the CONFIG_DB key
}

// Reconciler converges jobs on CONFIG_DB. Create it with New and drive it with Run; the
// Enqueue and *Changed methods may be called from any goroutine (keyspace watchers).
type Reconciler struct {
	cfg   Config
	state State
	dp    Datapath
	log   *slog.Logger
	opt   Options
	q     *workQueue

	needSettings atomic.Bool // TELEGEN|global or FEATURE changed
	needResync   atomic.Bool

	// Owned by the loop goroutine.
	jobs     map[string]*job
	slots    map[int]string // slot -> job id
	pending  []string       // FIFO of pending job ids
	globals  jobspec.Globals
	enabled  bool
	failures map[string]int // consecutive reconcile errors per id, for backoff

	crashed atomic.Bool // tests: exit as kill -9 would, leaving everything in place

	mirror    Mirror
	launchSeq uint64 // numbers launches; loop goroutine only
	// sweeping holds, for each sweep still running (one abandoned by the timeout may run on),
	// the jobs launched since it took its snapshot: it must not touch their kernel state.
	sweepMu  sync.Mutex
	sweeping map[*sweepGuard]struct{}
	launchMu sync.Mutex
	launches []launchResult
	inflight sync.WaitGroup // launch goroutines, waited for at shutdown

	patchMu sync.Mutex
	patches []resultPatch // late result fields (final export outcome)
}

// New builds a reconciler. Nothing happens until Run.
func New(cfg Config, state State, dp Datapath, mirror Mirror, logger *slog.Logger, opt Options) *Reconciler {
	if mirror == nil {
		mirror = noMirror{}
	}
	return &Reconciler{
		cfg:      cfg,
		state:    state,
		dp:       dp,
		mirror:   mirror,
		log:      logger.With("component", "reconciler"),
		opt:      opt.withDefaults(),
		q:        newWorkQueue(),
		jobs:     make(map[string]*job),
		slots:    make(map[int]string),
		globals:  jobspec.DefaultGlobals(),
		enabled:  true,
		failures: make(map[string]int),
	}
}

// Enqueue asks for job id to be reconciled.
func (r *Reconciler) Enqueue(id string) { r.q.Add(id) }

// SettingsChanged says TELEGEN|global or FEATURE|telegen may have changed.
func (r *Reconciler) SettingsChanged() {
	r.needSettings.Store(true)
	r.q.Add("") // wake the loop; "" is never a job id
}

// Resync asks for a full pass over CONFIG_DB and memory, e.g. after a watch reconnected.
func (r *Reconciler) Resync() {
	r.needResync.Store(true)
	r.q.Add("")
}

// Run recovers what a previous instance left, then reconciles until ctx ends. On return every job
// it ran has been torn down and recorded, as far as Redis allowed.
func (r *Reconciler) Run(ctx context.Context) error {
	defer r.q.Close()
	if err := r.recoverState(ctx); err != nil {
		return err
	}
	stats := time.NewTicker(r.opt.StatsInterval)
	defer stats.Stop()
	resync := time.NewTicker(r.opt.ResyncInterval)
	defer resync.Stop()
	sweep := time.NewTicker(r.opt.SweepInterval)
	defer sweep.Stop()

	for {
		r.expireDue()
		if r.needSettings.Swap(false) {
			if err := r.loadSettings(ctx); err != nil {
				r.log.Warn("reading settings failed", "err", err)
				r.needSettings.Store(true)
				r.q.AddAfter("", time.Second)
			} else {
				r.enqueueKnown()
			}
		}
		if r.needResync.Swap(false) {
			r.resync(ctx)
		}
		r.collectLaunches(ctx)
		r.applyPatches(ctx)
		for ctx.Err() == nil {
			id, ok := r.q.Pop()
			if !ok {
				break
			}
			r.collectLaunches(ctx)
			if id != "" {
				r.reconcileLogged(ctx, id)
			}
			r.expireDue()
		}
		select {
		case <-ctx.Done():
			if !r.crashed.Load() {
				r.shutdown()
			}
			return nil
		case <-r.q.Ready():
		case <-stats.C:
			r.publishLive(ctx)
		case <-resync.C:
			r.needSettings.Store(true)
			r.needResync.Store(true)
		case <-sweep.C:
			r.sweep(ctx)
		}
	}
}

func (r *Reconciler) reconcileLogged(ctx context.Context, id string) {
	err := r.reconcile(ctx, id)
	if err == nil {
		delete(r.failures, id)
		return
	}
	n := r.failures[id] + 1
	r.failures[id] = n
	backoff := min(50*time.Millisecond<<min(n-1, 6), 2*time.Second)
	r.log.Warn("reconcile failed; retrying", "job", id, "err", err, "attempt", n, "backoff", backoff)
	r.q.AddAfter(id, backoff)
}

// reconcile converges one job id: the key in CONFIG_DB is the intent, the job in memory (and so
// in the kernel) is the actual state, STATE_DB is where the outcome is written.
func (r *Reconciler) reconcile(ctx context.Context, id string) error {
	fields, exists, err := r.cfg.Job(ctx, id)
	if err != nil {
		return fmt.Errorf("reading intent: %w", err)
	}
	j := r.jobs[id]
	if j == nil {
		if !exists {
			return nil
		}
		if j, err = r.admit(ctx, id, fields); err != nil {
			return err
		}
	} else {
		switch j.phase {
		case phasePending:
			switch {
			case !exists:
				r.end(j, jobspec.Stopped, "")
			case !r.enabled:
				r.end(j, jobspec.Stopped, jobspec.ReasonFeatureDisabled)
			case r.pending[0] == id && r.freeSlot() >= 0:
				r.start(ctx, j)
			}
		case phaseRunning:
			switch {
			case j.launching:
				// Settled when the launch reports back (or times out): see launched.
				r.checkLaunchDeadline(j)
			case !exists:
				r.finish(ctx, j, jobspec.Stopped, "")
			case !r.enabled:
				r.finish(ctx, j, jobspec.Stopped, jobspec.ReasonFeatureDisabled)
			default:
				r.refreshCounters(j)
			}
		}
	}
	return r.publish(ctx, j, exists)
}

// admit decides what a newly seen key becomes: failed, rejected, pending or started.
func (r *Reconciler) admit(ctx context.Context, id string, fields map[string]string) (*job, error) {
	now := r.opt.Now()
	j := &job{id: id, slot: -1, createdAt: now}
	spec, err := jobspec.Parse(id, fields, r.globals)
	if err != nil {
		r.jobs[id] = j
		r.end(j, jobspec.Failed, jobspec.Reason(err))
		return j, nil
	}
	j.spec = spec
	if !spec.ExpiresAt.IsZero() && !now.Before(spec.ExpiresAt) {
		r.jobs[id] = j
		r.end(j, jobspec.Failed, jobspec.ReasonExpired)
		return j, nil
	}
	ok, err := r.cfg.PortExists(ctx, spec.Port)
	if err != nil {
		return nil, fmt.Errorf("checking port: %w", err)
	}
	r.jobs[id] = j
	switch {
	case !ok:
		r.end(j, jobspec.Failed, jobspec.Reason(&jobspec.FieldError{
			Field: "port", Why: fmt.Sprintf("%q is not a port of CONFIG_DB PORT", spec.Port)}))
	case !r.enabled:
		r.end(j, jobspec.Rejected, jobspec.ReasonFeatureDisabled)
	case len(r.pending) == 0 && r.freeSlot() >= 0:
		r.start(ctx, j)
	case len(r.pending) < r.globals.MaxJobsQueue:
		j.phase, j.status, j.dirty = phasePending, jobspec.Pending, true
		r.pending = append(r.pending, id)
	default:
		r.end(j, jobspec.Rejected, jobspec.ReasonConcurrencyLimit)
	}
	return j, nil
}

// freeSlot is the lowest free slot number, or -1 when every slot is taken.
func (r *Reconciler) freeSlot() int {
	if len(r.slots) >= r.globals.MaxConcurrentJobs {
		return -1
	}
	for i := 0; ; i++ {
		if _, taken := r.slots[i]; !taken {
			return i
		}
	}
}

// start takes a slot and attaches the job's datapath.
func (r *Reconciler) start(ctx context.Context, j *job) {
	now := r.opt.Now()
	r.pending = slices.DeleteFunc(r.pending, func(id string) bool { return id == j.id })
	j.slot = r.freeSlot()
	r.slots[j.slot] = j.id
	j.phase, j.status, j.dirty = phaseRunning, jobspec.Starting, true
	j.startedAt = now
	j.expiresAt = now.Add(j.spec.Duration())
	if !j.spec.ExpiresAt.IsZero() && j.spec.ExpiresAt.Before(j.expiresAt) {
		j.expiresAt = j.spec.ExpiresAt // a key brought back by config reload keeps its window
	}
	if err := r.publish(ctx, j, true); err != nil {
		r.log.Warn("publishing starting failed", "job", j.id, "err", err)
	}
	r.launch(ctx, j)
}

// launch sets the job's mirror session and datapath up in a goroutine of its own, so a slow
// orchagent or kernel never stalls the loop; the outcome comes back through r.launches.
func (r *Reconciler) launch(ctx context.Context, j *job) {
	// Numbered across jobs, not per job: a key deleted and written again is a new job whose
	// launch must not be taken for the old one's.
	r.launchSeq++
	j.gen = r.launchSeq
	r.sweepMu.Lock()
	for g := range r.sweeping {
		g.add(j.id)
	}
	r.sweepMu.Unlock()
	j.launching = true
	j.launchDeadline = r.opt.Now().Add(r.opt.OpTimeout + time.Second)
	r.q.AddAfter(j.id, r.opt.OpTimeout+time.Second)
	id, gen, spec := j.id, j.gen, j.spec
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		ctx, cancel := context.WithTimeout(ctx, r.opt.OpTimeout)
		defer cancel()
		res := launchResult{id: id, gen: gen}
		src := Source{Interface: spec.Port, ERSPANSessionID: -1}
		var note string
		if spec.SpanMethod != jobspec.Direct {
			m, err := r.mirror.Create(ctx, spec)
			if err != nil {
				res.err = err
				if !isReasonError(err) {
					res.err = &ReasonError{Reason: jobspec.MirrorFailed(err.Error())}
				}
				r.finishLaunch(res)
				return
			}
			res.session, src, note = m.Session, m.Source, m.Note
		}
		// On failure the session is left to collectLaunches: only the loop knows whether a
		// newer job of the same id now owns the same-named session.
		run, err := r.dp.Start(ctx, spec, src)
		if err != nil {
			res.err = err
		}
		res.run, res.note = run, note
		r.finishLaunch(res)
	}()
}

// launchResult is what a launch goroutine reports.
type launchResult struct {
	id      string
	gen     uint64
	run     Run
	session string
	note    string
	err     error
}

func (r *Reconciler) finishLaunch(res launchResult) {
	r.launchMu.Lock()
	r.launches = append(r.launches, res)
	r.launchMu.Unlock()
	r.q.Add(res.id)
}

// collectLaunches applies finished launches. A launch whose job has moved on (deleted, timed
// out, superseded) is undone at once, so nothing it made is left without an owner.
func (r *Reconciler) collectLaunches(ctx context.Context) {
	r.launchMu.Lock()
	done := r.launches
	r.launches = nil
	r.launchMu.Unlock()
	for _, res := range done {
		j := r.jobs[res.id]
		if j == nil || !j.launching || j.gen != res.gen {
			r.log.Warn("undoing a launch that finished too late", "job", res.id, "err", res.err)
			if res.run != nil {
				_ = r.bounded(res.run.Close)
			}
			// Session names come from job ids: a newer job of this id that is being set up
			// or runs has the same one, and it is that job's now.
			if res.session != "" && (j == nil || (!j.launching && j.run == nil)) {
				r.dropMirror(res.id)
			}
			continue
		}
		j.launching = false
		j.session, j.mirrorNote = res.session, res.note
		if res.err != nil {
			r.log.Warn("job failed to start", "job", j.id, "err", res.err)
			if res.session != "" {
				r.dropMirror(j.id)
			}
			r.end(j, jobspec.Failed, reasonFor(res.err))
			continue
		}
		j.run, j.status, j.dirty = res.run, jobspec.Running, true
		r.opt.Exporter.Start(j.spec, res.run.Interface())
		r.q.AddAfter(j.id, j.expiresAt.Sub(r.opt.Now()))
		r.stamp(ctx, j)
		r.log.Info("job running", "job", j.id, "port", j.spec.Port, "interface", res.run.Interface(),
			"mirror_session", j.session, "slot", j.slot, "expires_at", j.expiresAt)
	}
}

// checkLaunchDeadline fails a job whose launch never reported: a hung worker must not hold a
// slot past its bound. Whatever the launch makes later is undone by collectLaunches.
func (r *Reconciler) checkLaunchDeadline(j *job) {
	if r.opt.Now().Before(j.launchDeadline) {
		return
	}
	j.launching = false
	r.end(j, jobspec.Failed, jobspec.AttachFailed(fmt.Sprintf("setup did not finish within %v", r.opt.OpTimeout)))
}

// waitLaunches waits for launch goroutines, but never longer than their bound: one stuck in a
// hung kernel or orchagent call is abandoned, not waited for.
func (r *Reconciler) waitLaunches() {
	done := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(r.opt.OpTimeout + time.Second):
		r.log.Error("a job setup is still stuck; abandoning it")
	}
}

// dropMirror removes a job's mirror session under the operation timeout; the sweep retries.
func (r *Reconciler) dropMirror(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opt.OpTimeout)
	defer cancel()
	if err := r.mirror.Delete(ctx, id); err != nil {
		r.log.Warn("removing mirror session failed; the sweep will retry", "job", id, "err", err)
	}
}

// stamp records expires_at in the CONFIG_DB key, so a key that config reload brings back after
// its window is recognised as expired.
func (r *Reconciler) stamp(ctx context.Context, j *job) {
	if j.stamped {
		return
	}
	err := r.cfg.StampJob(ctx, j.id, map[string]string{jobspec.FieldExpiresAt: jobspec.FormatTime(j.expiresAt)})
	if err != nil {
		r.log.Warn("stamping expires_at failed; will retry", "job", j.id, "err", err)
		return
	}
	j.stamped = true
}

// bounded runs fn under the operation timeout; a hung fn is abandoned, never waited for.
func (r *Reconciler) bounded(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(r.opt.OpTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("timed out after %v", r.opt.OpTimeout)
	}
}

// end records a verdict for a job that holds no kernel state.
func (r *Reconciler) end(j *job, status jobspec.Status, reason string) {
	r.pending = slices.DeleteFunc(r.pending, func(id string) bool { return id == j.id })
	j.phase, j.status, j.reason, j.dirty = phaseEnded, status, reason, true
	j.endedAt = r.opt.Now()
	r.opt.Exporter.Verdict(j.id, status, reason)
	r.log.Info("job ended", "job", j.id, "status", status, "reason", reason)
}

// finish tears a running job down and keeps its final figures. It needs no Redis, so a deadline
// is kept even while Redis is away; publishing follows when it can.
func (r *Reconciler) finish(ctx context.Context, j *job, status jobspec.Status, reason string) {
	if j.run != nil {
		j.status = jobspec.Stopping
		if j.begun {
			// Best effort: the record says stopping while the teardown runs.
			_ = r.state.UpdateRun(ctx, j.id, map[string]string{jobspec.FieldStatus: string(jobspec.Stopping)})
		}
		run := j.run
		var (
			snap  aggregate.Snapshot
			extra map[string]string
		)
		err := r.bounded(func() (err error) { snap, extra, err = run.Finish(); return err })
		if err != nil {
			r.log.Error("finishing job failed; the sweep removes what is left", "job", j.id, "err", err)
		}
		if err != nil && snap.Packets() == 0 && j.snap.Packets() > 0 {
			// Nothing was read: keep the last live figures, flagged as not exact.
			j.totalsExact = false
		} else {
			j.snap, j.totalsExact = snap, true
		}
		j.extra = extra
		j.run = nil
		j.hasResult = true
		if j.session != "" {
			r.dropMirror(j.id)
		}
		id := j.id
		j.otelExport = r.opt.Exporter.End(id, j.snap, func(v map[string]any) { r.patchResult(id, v) })
	}
	r.end(j, status, reason)
}

// expireDue ends every running job whose window has passed. Cheap; runs between reconciles.
func (r *Reconciler) expireDue() {
	now := r.opt.Now()
	for _, j := range r.jobs {
		if j.phase == phaseRunning && j.run != nil && !now.Before(j.expiresAt) {
			r.finish(context.Background(), j, jobspec.Done, "")
			r.q.Add(j.id)
		}
	}
}

func (r *Reconciler) refreshCounters(j *job) {
	if j.run == nil {
		return
	}
	snap, err := j.run.Snapshot()
	if err != nil {
		r.log.Warn("reading counters failed", "job", j.id, "err", err)
		return
	}
	j.snap, j.totalsExact = snap, true
	j.dirty = true
	r.opt.Exporter.Update(j.id, snap)
}

// publishLive writes live counters of running jobs into STATE_DB.
func (r *Reconciler) publishLive(ctx context.Context) {
	for _, j := range r.jobs {
		if j.phase != phaseRunning || j.run == nil {
			continue
		}
		r.refreshCounters(j)
		if err := r.publish(ctx, j, true); err != nil {
			r.log.Debug("publishing live counters failed", "job", j.id, "err", err)
		}
	}
}

// publish writes what memory knows and STATE_DB does not yet, in an order a reader can trust:
// the result before the terminal status, the terminal status before the key goes away. An ended
// job is forgotten once all of that has happened, which frees its slot.
func (r *Reconciler) publish(ctx context.Context, j *job, keyExists bool) error {
	ended := j.phase == phaseEnded
	if ended && j.hasResult && !j.resultWritten {
		if err := r.state.PutResult(ctx, j.id, r.resultFields(j)); err != nil {
			return fmt.Errorf("writing result: %w", err)
		}
		j.resultWritten = true
	}
	if !j.begun {
		if err := r.state.BeginRun(ctx, j.id, r.recordFields(j)); err != nil {
			return fmt.Errorf("writing status: %w", err)
		}
		j.begun, j.dirty = true, false
	} else if j.dirty {
		if err := r.state.UpdateRun(ctx, j.id, r.recordFields(j)); err != nil {
			return fmt.Errorf("writing status: %w", err)
		}
		j.dirty = false
	}
	if j.phase == phaseRunning {
		r.stamp(ctx, j)
	}
	if !ended {
		return nil
	}
	if keyExists {
		if err := r.cfg.DeleteJob(ctx, j.id); err != nil {
			return fmt.Errorf("deleting finished job key: %w", err)
		}
	}
	r.forget(j)
	if err := r.state.Prune(ctx, r.globals.ResultHistory); err != nil {
		r.log.Warn("pruning old records failed", "err", err)
	}
	return nil
}

// forget drops an ended, published job; its slot goes to the head of the queue.
func (r *Reconciler) forget(j *job) {
	delete(r.jobs, j.id)
	if j.slot >= 0 && r.slots[j.slot] == j.id {
		delete(r.slots, j.slot)
	}
	r.admitPending()
}

// admitPending enqueues as many queued jobs as there are free slots.
func (r *Reconciler) admitPending() {
	free := r.globals.MaxConcurrentJobs - len(r.slots)
	for i := 0; i < free && i < len(r.pending); i++ {
		r.q.Add(r.pending[i])
	}
}

func (r *Reconciler) recordFields(j *job) map[string]string {
	f := map[string]string{
		jobspec.FieldStatus:        string(j.status),
		jobspec.FieldReason:        j.reason,
		jobspec.FieldSlot:          "",
		jobspec.FieldInterface:     "",
		jobspec.FieldMirrorSession: "",
		jobspec.FieldCreatedAt:     formatTime(j.createdAt),
		jobspec.FieldStartedAt:     formatTime(j.startedAt),
		jobspec.FieldExpiresAt:     formatTime(j.expiresAt),
		jobspec.FieldFinishedAt:    "",
		jobspec.FieldPacketsTotal:  strconv.FormatUint(j.snap.Packets(), 10),
		jobspec.FieldBytesTotal:    strconv.FormatUint(j.snap.Bytes(), 10),
		jobspec.FieldUpdatedAt:     formatTime(r.opt.Now()),
	}
	if j.slot >= 0 && j.phase != phaseEnded {
		f[jobspec.FieldSlot] = strconv.Itoa(j.slot)
	}
	if j.run != nil {
		f[jobspec.FieldInterface] = j.run.Interface()
		f[jobspec.FieldMirrorSession] = j.session
		if j.mirrorNote != "" {
			f["mirror_note"] = j.mirrorNote
		}
	} else if j.hasResult && j.spec.Port != "" {
		f[jobspec.FieldInterface] = j.spec.Port
	}
	if j.phase == phaseEnded {
		f[jobspec.FieldFinishedAt] = formatTime(j.endedAt)
	}
	return f
}

// resultFields is the result document of an ended run as one STATE_DB hash.
func (r *Reconciler) resultFields(j *job) map[string]string {
	window := j.endedAt.Sub(j.startedAt)
	if j.status == jobspec.Done && !j.expiresAt.IsZero() && j.endedAt.After(j.expiresAt) {
		window = j.expiresAt.Sub(j.startedAt) // the counters stopped with the window
	}
	f := j.snap.Fields()
	maps.Copy(f, j.extra)
	if j.snap.SampleRate == 0 {
		f["sample_rate"] = strconv.FormatUint(uint64(j.spec.SampleRate), 10)
	}
	f["status"] = string(j.status)
	f["reason"] = j.reason
	f["port"] = j.spec.Port
	f["direction"] = string(j.spec.Direction)
	f["span_method"] = string(j.spec.SpanMethod)
	f["started_at"] = formatTime(j.startedAt)
	f["finished_at"] = formatTime(j.endedAt)
	f["window_sec"] = strconv.FormatFloat(window.Seconds(), 'f', 3, 64)
	// Totals count every matching packet whatever the sample rate; sampling applies to the
	// per-flow, error-detail and latency work.
	f["totals_exact"] = strconv.FormatBool(j.totalsExact)
	if j.otelExport != nil {
		f["otel_export"] = otelExportField(j.otelExport)
	}
	return f
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return jobspec.FormatTime(t)
}

// enqueueKnown queues every job in memory, e.g. after a settings change.
func (r *Reconciler) enqueueKnown() {
	for id := range r.jobs {
		r.q.Add(id)
	}
}

// resync queues every key of CONFIG_DB and every job in memory: the level-triggered safety net
// for events lost while a watch was down.
func (r *Reconciler) resync(ctx context.Context) {
	ids, err := r.cfg.JobIDs(ctx)
	if err != nil {
		r.log.Warn("resync: listing jobs failed", "err", err)
		r.needResync.Store(true)
		r.q.AddAfter("", time.Second)
		return
	}
	// Pending jobs first, in queue order, so a new key never overtakes them.
	for _, id := range r.pending {
		r.q.Add(id)
	}
	for _, id := range ids {
		r.q.Add(id)
	}
	r.enqueueKnown()
}

func (r *Reconciler) loadSettings(ctx context.Context) error {
	g, err := r.cfg.Globals(ctx)
	if err != nil {
		return err
	}
	enabled, err := r.cfg.FeatureEnabled(ctx)
	if err != nil {
		return err
	}
	if enabled != r.enabled {
		r.log.Info("feature state changed", "enabled", enabled)
	}
	r.globals, r.enabled = g, enabled
	r.opt.Exporter.Configure(g)
	r.admitPending()
	return nil
}

// sweepGuard is one sweep's view of which jobs own kernel state: a snapshot of the loop's, plus
// the jobs launched while the sweep runs (added by the loop under Reconciler.sweepMu).
type sweepGuard struct {
	owned map[string]bool // the snapshot; read-only
	mu    sync.Mutex
	later map[string]bool
}

func (g *sweepGuard) add(id string) {
	g.mu.Lock()
	g.later[id] = true
	g.mu.Unlock()
}

func (g *sweepGuard) keep(id string) bool {
	if g.owned[id] {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.later[id]
}

// sweep removes kernel state of ours that no running job owns. The sweep never reads the loop's
// memory: it keeps a snapshot, and the jobs launched while it runs are handed to it, so a sweep
// abandoned by the timeout and still running cannot remove what a new job just made.
func (r *Reconciler) sweep(ctx context.Context) {
	g := &sweepGuard{owned: make(map[string]bool), later: make(map[string]bool)}
	for id, j := range r.jobs {
		if j.run != nil || j.launching {
			g.owned[id] = true
		}
	}
	r.sweepMu.Lock()
	if r.sweeping == nil {
		r.sweeping = make(map[*sweepGuard]struct{})
	}
	r.sweeping[g] = struct{}{}
	r.sweepMu.Unlock()
	err := r.bounded(func() error {
		defer func() {
			r.sweepMu.Lock()
			delete(r.sweeping, g)
			r.sweepMu.Unlock()
		}()
		return errors.Join(r.dp.CleanUp(ctx, g.keep), r.mirror.CleanUp(ctx, g.keep))
	})
	if err != nil {
		r.log.Warn("orphan sweep failed", "err", err)
	}
}

// ownsKernelState reports whether a job in memory has kernel state. Loop goroutine only.
func (r *Reconciler) ownsKernelState(id string) bool {
	j := r.jobs[id]
	return j != nil && j.run != nil
}

// shutdown ends every job on the way out, so nothing stays attached after the daemon.
func (r *Reconciler) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.waitLaunches()
	r.collectLaunches(ctx)
	for _, j := range r.jobs {
		switch j.phase {
		case phaseRunning:
			r.finish(ctx, j, jobspec.Stopped, "daemon_shutdown")
		case phasePending:
			r.end(j, jobspec.Stopped, "daemon_shutdown")
		}
	}
	for _, j := range r.jobs {
		if err := r.publish(ctx, j, true); err != nil {
			r.log.Warn("recording job at shutdown failed", "job", j.id, "err", err)
		}
	}
}

// errStopped is returned by recovery when ctx ends first.
var errStopped = errors.New("reconciler stopped before recovery finished")
