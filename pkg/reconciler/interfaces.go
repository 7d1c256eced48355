// Package reconciler owns the life of telemetry jobs: it admits, queues, runs, times out and ends
// them, converging what the kernel runs on what CONFIG_DB asks and recording every verdict in
// STATE_DB. It is the single writer of job state; the interfaces below are what it needs from the
// outside, and the daemon injects real implementations.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// Config is CONFIG_DB as the reconciler reads it: the operators' live intent.
type Config interface {
	// Job returns the raw fields of TELEGEN_JOB|id; ok is false when the key does not exist.
	Job(ctx context.Context, id string) (fields map[string]string, ok bool, err error)
	// JobIDs lists every TELEGEN_JOB key.
	JobIDs(ctx context.Context) ([]string, error)
	// DeleteJob removes TELEGEN_JOB|id; deleting a missing key is not an error.
	DeleteJob(ctx context.Context, id string) error
	// StampJob merges fields into TELEGEN_JOB|id if the key still exists (never re-creates it).
	StampJob(ctx context.Context, id string, fields map[string]string) error
	// Globals reads TELEGEN|global with defaults applied.
	Globals(ctx context.Context) (jobspec.Globals, error)
	// FeatureEnabled reports whether FEATURE|telegen lets jobs run.
	FeatureEnabled(ctx context.Context) (bool, error)
	// PortExists reports whether PORT|port exists.
	PortExists(ctx context.Context, port string) (bool, error)
}

// State is STATE_DB: verdicts, live status and results.
type State interface {
	// Records returns every TELEGEN_JOB_TABLE entry, for recovery after a restart.
	Records(ctx context.Context) (map[string]map[string]string, error)
	// BeginRun replaces TELEGEN_JOB_TABLE|id with fields and drops the result of an earlier run of
	// the same id, so nothing of a previous run lingers in a new one.
	BeginRun(ctx context.Context, id string, fields map[string]string) error
	// UpdateRun merges fields into TELEGEN_JOB_TABLE|id. Idempotent.
	UpdateRun(ctx context.Context, id string, fields map[string]string) error
	// PutResult replaces TELEGEN_RESULT_TABLE|id. Idempotent.
	PutResult(ctx context.Context, id string, fields map[string]string) error
	// PatchResult merges fields into TELEGEN_RESULT_TABLE|id if it exists. Idempotent.
	PatchResult(ctx context.Context, id string, fields map[string]string) error
	// Prune keeps the records and results of at most keep finished jobs, dropping the oldest.
	Prune(ctx context.Context, keep int) error
}

// Datapath runs the per-job kernel programs.
type Datapath interface {
	// Start arranges for the job's packets to be counted and returns its handle. On error nothing
	// of the job is left behind. An error wrapping *ReasonError carries the reason to publish.
	// src says where the job's packets surface: the port's own netdev, or the sink of a mirror
	// session (with the ERSPAN session id that marks this job's copies).
	Start(ctx context.Context, spec jobspec.Spec, src Source) (Run, error)
	// Adopt re-opens a job a previous instance left running, or fails when it is not there whole.
	Adopt(ctx context.Context, jobID string) (Run, error)
	// CleanUp removes every attachment and pin whose job keep does not claim. Idempotent.
	CleanUp(ctx context.Context, keep func(jobID string) bool) error
}

// Run is one job's live kernel state.
type Run interface {
	// Interface is the netdev the job watches.
	Interface() string
	// Snapshot reads what the job has measured so far.
	Snapshot() (aggregate.Snapshot, error)
	// Finish reads the job's final figures, tears it down, and returns the figures with the
	// result fields only known at the end (e.g. a capture file).
	Finish() (final aggregate.Snapshot, extra map[string]string, err error)
	// Close tears the job down without reading it (undoing a launch). Idempotent.
	Close() error
}

// Source is where a job's packets reach the CPU.
type Source struct {
	Interface string // netdev to attach to
	// Mirrored is true when the packets are copies arriving on a sink (received there whatever
	// the direction they crossed the port in), false for the port's own netdev.
	Mirrored bool
	// ERSPAN is true when the copies are GRE/ERSPAN-encapsulated; ERSPANSessionID is then the
	// session id marking this job's copies, or -1 for any.
	ERSPAN          bool
	ERSPANSessionID int
}

// Mirror arranges for copies of a port's packets to reach the CPU through SONiC's
// MIRROR_SESSION (SPAN or ERSPAN). Its methods may block on Redis and orchagent; the reconciler
// calls them outside its loop, under a timeout.
type Mirror interface {
	// Create writes the job's session (and any hardware pre-filter), waits until orchagent has
	// made it active, and returns where the copies surface. On error nothing of it is left.
	Create(ctx context.Context, spec jobspec.Spec) (MirrorSession, error)
	// Delete removes everything Create made for the job. Idempotent.
	Delete(ctx context.Context, jobID string) error
	// CleanUp removes every session of ours whose job keep does not claim. Idempotent.
	CleanUp(ctx context.Context, keep func(jobID string) bool) error
}

// MirrorSession is a session Create made.
type MirrorSession struct {
	Session string // MIRROR_SESSION key
	Source  Source
	Note    string // how the session was made when not as asked, e.g. the ACL pre-filter fell back
}

// noMirror is the Mirror of a daemon that has no mirror configuration.
type noMirror struct{}

func (noMirror) Create(_ context.Context, spec jobspec.Spec) (MirrorSession, error) {
	return MirrorSession{}, &ReasonError{Reason: jobspec.MirrorFailed(fmt.Sprintf(
		"span_method %s needs mirror sessions, which this telegend does not program; use span_method direct", spec.SpanMethod))}
}
func (noMirror) Delete(context.Context, string) error             { return nil }
func (noMirror) CleanUp(context.Context, func(string) bool) error { return nil }

func isReasonError(err error) bool {
	var re *ReasonError
	return errors.As(err, &re)
}

// ReasonError is a failure with the exact STATE_DB reason to publish (e.g. "mirror_failed: …").
type ReasonError struct {
	Reason string
	Err    error
}

func (e *ReasonError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *ReasonError) Unwrap() error { return e.Err }

// reasonFor turns a datapath failure into the reason STATE_DB shows.
func reasonFor(err error) string {
	var re *ReasonError
	if errors.As(err, &re) {
		return re.Reason
	}
	return jobspec.AttachFailed(err.Error())
}

// Options tunes the reconciler; zero values take the defaults.
type Options struct {
	ResyncInterval time.Duration // full pass over CONFIG_DB and memory (default 10 s)
	StatsInterval  time.Duration // live counters into STATE_DB (default 1 s)
	SweepInterval  time.Duration // kernel orphan sweep (default 30 s)
	OpTimeout      time.Duration // bound on one datapath call (default 10 s)
	Exporter       Exporter      // where metrics go (default: nowhere)
	Now            func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 10 * time.Second
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 30 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.Exporter == nil {
		o.Exporter = nopExporter{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
