package reconciler

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// recoverState picks up what a previous instance left: jobs still attached are adopted with their
// counters intact, jobs that cannot be are ended as daemon_restart, the queue is rebuilt in its
// old order, and every kernel attachment no adopted job owns is removed. It waits for Redis.
func (r *Reconciler) recoverState(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := r.tryRecover(ctx)
		if err == nil {
			return nil
		}
		r.log.Warn("recovery failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

type priorRecord struct {
	id     string
	fields map[string]string
	status jobspec.Status
	at     time.Time // created_at
}

func (r *Reconciler) tryRecover(ctx context.Context) error {
	// A failed attempt must not leave half a picture behind.
	for _, j := range r.jobs {
		if j.run != nil {
			_ = j.run.Close()
		}
	}
	r.waitLaunches()
	r.launchMu.Lock()
	r.launches = nil
	r.launchMu.Unlock()
	clear(r.jobs)
	clear(r.slots)
	r.pending = nil

	if err := r.loadSettings(ctx); err != nil {
		return fmt.Errorf("reading settings: %w", err)
	}
	records, err := r.state.Records(ctx)
	if err != nil {
		return fmt.Errorf("reading job records: %w", err)
	}
	ids, err := r.cfg.JobIDs(ctx)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}

	var live, queued []priorRecord
	for id, f := range records {
		rec := priorRecord{id: id, fields: f, status: jobspec.Status(f[jobspec.FieldStatus])}
		rec.at, _ = jobspec.ParseTime(f[jobspec.FieldCreatedAt])
		switch {
		case rec.status == jobspec.Pending:
			queued = append(queued, rec)
		case rec.status.Live():
			live = append(live, rec)
		case rec.status.Terminal():
			if err := r.dropFinishedKey(ctx, rec); err != nil {
				return err
			}
		}
	}
	byCreation := func(a, b priorRecord) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.id, b.id))
	}
	slices.SortFunc(live, byCreation)
	slices.SortFunc(queued, byCreation)

	for _, rec := range live {
		if err := r.recoverLive(ctx, rec); err != nil {
			return err
		}
	}
	for _, rec := range queued {
		fields, exists, err := r.cfg.Job(ctx, rec.id)
		if err != nil {
			return err
		}
		j := r.jobFromRecord(rec)
		r.jobs[rec.id] = j
		spec, perr := jobspec.Parse(rec.id, fields, r.globals)
		switch {
		case !exists:
			r.end(j, jobspec.Stopped, "")
		case perr != nil:
			r.end(j, jobspec.Failed, jobspec.Reason(perr))
		default:
			j.spec, j.phase, j.status = spec, phasePending, jobspec.Pending
			r.pending = append(r.pending, rec.id)
		}
	}

	if err := r.dp.CleanUp(ctx, r.ownsKernelState); err != nil {
		return fmt.Errorf("removing orphaned attachments: %w", err)
	}
	if err := r.mirror.CleanUp(ctx, r.ownsKernelState); err != nil {
		return fmt.Errorf("removing orphaned mirror sessions: %w", err)
	}
	for _, id := range r.pending {
		r.q.Add(id)
	}
	for id := range r.jobs {
		r.q.Add(id)
	}
	for _, id := range ids {
		r.q.Add(id)
	}
	r.log.Info("recovered", "adopted", len(r.slots), "pending", len(r.pending), "keys", len(ids))
	return nil
}

// dropFinishedKey deletes a key whose run already has a verdict: the previous instance crashed
// between recording the verdict and deleting the key. A key re-created by a user has no
// expires_at, or another one, and is left to start a new run.
func (r *Reconciler) dropFinishedKey(ctx context.Context, rec priorRecord) error {
	stampedAt := rec.fields[jobspec.FieldExpiresAt]
	if stampedAt == "" {
		return nil
	}
	fields, exists, err := r.cfg.Job(ctx, rec.id)
	if err != nil || !exists || fields[jobspec.FieldExpiresAt] != stampedAt {
		return err
	}
	r.log.Info("removing key of a finished job", "job", rec.id, "status", rec.status)
	return r.cfg.DeleteJob(ctx, rec.id)
}

func (r *Reconciler) jobFromRecord(rec priorRecord) *job {
	f := rec.fields
	j := &job{id: rec.id, slot: -1, status: rec.status, begun: true, stamped: true}
	j.createdAt, _ = jobspec.ParseTime(f[jobspec.FieldCreatedAt])
	j.startedAt, _ = jobspec.ParseTime(f[jobspec.FieldStartedAt])
	j.expiresAt, _ = jobspec.ParseTime(f[jobspec.FieldExpiresAt])
	if j.createdAt.IsZero() {
		j.createdAt = r.opt.Now()
	}
	// The last live figures the previous instance published: a lower bound, not exact.
	j.snap.Ingress.Packets, _ = strconv.ParseUint(f[jobspec.FieldPacketsTotal], 10, 64)
	j.snap.Ingress.Bytes, _ = strconv.ParseUint(f[jobspec.FieldBytesTotal], 10, 64)
	return j
}

// recoverLive adopts a job the previous instance was running, or ends it as daemon_restart.
func (r *Reconciler) recoverLive(ctx context.Context, rec priorRecord) error {
	fields, exists, err := r.cfg.Job(ctx, rec.id)
	if err != nil {
		return err
	}
	j := r.jobFromRecord(rec)
	r.jobs[rec.id] = j
	r.takeSlot(j, rec.fields[jobspec.FieldSlot])
	spec, perr := jobspec.Parse(rec.id, fields, r.globals)
	if perr == nil {
		j.spec = spec
	} else {
		j.spec.Port = rec.fields[jobspec.FieldInterface]
	}
	if j.expiresAt.IsZero() && perr == nil {
		j.expiresAt = spec.ExpiresAt
	}

	run, aerr := r.dp.Adopt(ctx, rec.id)
	if aerr != nil {
		r.log.Warn("job could not be adopted after restart", "job", rec.id, "err", aerr)
		j.hasResult = true
		r.end(j, jobspec.Failed, jobspec.ReasonDaemonRestart)
		return nil
	}
	j.phase, j.run, j.dirty = phaseRunning, run, true
	j.session = rec.fields[jobspec.FieldMirrorSession]
	j.snap = aggregate.Snapshot{}
	if perr == nil {
		r.opt.Exporter.Start(j.spec, run.Interface())
	}
	r.refreshCounters(j)
	now := r.opt.Now()
	switch {
	case !exists:
		r.finish(ctx, j, jobspec.Stopped, "")
	case perr != nil:
		r.finish(ctx, j, jobspec.Failed, jobspec.Reason(perr))
	case j.expiresAt.IsZero():
		r.finish(ctx, j, jobspec.Failed, jobspec.ReasonDaemonRestart)
	case now.After(j.expiresAt.Add(time.Second)):
		// The window ended while no daemon was there to close it: the kernel kept counting past
		// it, so the figures are not the window's exact totals.
		r.finish(ctx, j, jobspec.Done, jobspec.ReasonDaemonRestart)
		j.totalsExact = false
	default:
		j.status = jobspec.Running
		r.q.AddAfter(rec.id, j.expiresAt.Sub(now))
		r.log.Info("adopted running job", "job", rec.id, "slot", j.slot, "expires_at", j.expiresAt)
	}
	return nil
}

// takeSlot gives a recovered job its recorded slot, or the lowest free one if that is unusable.
func (r *Reconciler) takeSlot(j *job, recorded string) {
	slot, err := strconv.Atoi(recorded)
	if _, taken := r.slots[slot]; err != nil || slot < 0 || taken {
		for slot = 0; ; slot++ {
			if _, taken := r.slots[slot]; !taken {
				break
			}
		}
	}
	j.slot = slot
	r.slots[slot] = j.id
}
