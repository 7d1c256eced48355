package client

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// Direct timing.
const (
	pollInterval   = 250 * time.Millisecond // re-read even without a keyspace event
	confirmTimeout = 2 * time.Second        // for the SUBSCRIBE confirmation
	cleanupTimeout = 2 * time.Second        // for removing a key nobody answered
	// defaultStopGrace is how long Stop waits for any sign of telegend when the job it deletes
	// had no live record: such a key was never admitted, so there may be nothing to wait for.
	defaultStopGrace = time.Second
)

// DirectOptions tunes Direct; zero values take the defaults.
type DirectOptions struct {
	// VerdictTimeout bounds how long Start and Stop wait for telegend (default 5 s).
	VerdictTimeout time.Duration
	// StopGrace bounds Stop's wait for a job that was never admitted (default 1 s).
	StopGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// NewID makes job ids for Start (default NewJobID).
	NewID func() string
	// CaptureDir, when set, is the only directory Pcap serves capture files from.
	CaptureDir string
}

func (o DirectOptions) withDefaults() DirectOptions {
	if o.VerdictTimeout <= 0 {
		o.VerdictTimeout = DefaultVerdictTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = defaultStopGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = NewJobID
	}
	return o
}

// Direct is the Service that talks to SONiC's Redis itself: it writes and deletes
// TELEGEN_JOB|<id> in CONFIG_DB and reads telegend's verdicts from STATE_DB. It never decides
// anything telegend decides. It is safe for concurrent use.
type Direct struct {
	config, state *sonicdb.DB
	owned         bool
	opt           DirectOptions
}

var _ Service = (*Direct)(nil)

// OpenDirect finds Redis through database_config.json (the path as sonicdb.ResolveConfigPath
// resolves dbConfigPath) and opens CONFIG_DB and STATE_DB. A config that cannot be read is an
// unavailable *Error.
func OpenDirect(dbConfigPath string, opt DirectOptions) (*Direct, error) {
	cfg, err := sonicdb.LoadConfig(sonicdb.ResolveConfigPath(dbConfigPath))
	if err != nil {
		return nil, newError(CodeUnavailable, "cannot find Redis: %v", err)
	}
	config, err := cfg.Open("CONFIG_DB")
	if err != nil {
		return nil, newError(CodeUnavailable, "cannot find Redis: %v", err)
	}
	state, err := cfg.Open("STATE_DB")
	if err != nil {
		_ = config.Close()
		return nil, newError(CodeUnavailable, "cannot find Redis: %v", err)
	}
	d := NewDirect(config, state, opt)
	d.owned = true
	return d, nil
}

// NewDirect uses the given databases; Close leaves them open.
func NewDirect(config, state *sonicdb.DB, opt DirectOptions) *Direct {
	return &Direct{config: config, state: state, opt: opt.withDefaults()}
}

// Close closes the databases OpenDirect opened.
func (d *Direct) Close() error {
	if !d.owned {
		return nil
	}
	return errors.Join(d.config.Close(), d.state.Close())
}

// NewJobID returns a random (version 4) UUID.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Start validates req, writes TELEGEN_JOB|<new id> in canonical form and waits for the verdict:
// subscribed to the record's keyspace channel before the write, it accepts only a record whose
// created_at is not older than the write. Running or pending returns the job; starting is
// waited on until it runs or fails (and returned as starting if the wait ends first). With no
// verdict in time the key is removed again and the error is unavailable.
func (d *Direct) Start(ctx context.Context, req JobRequest) (Job, error) {
	return d.start(ctx, d.opt.NewID(), req)
}

func (d *Direct) start(ctx context.Context, id string, req JobRequest) (Job, error) {
	enabled, err := d.featureEnabled(ctx)
	if err != nil {
		return Job{}, err
	}
	if !enabled {
		return Job{}, featureDisabled()
	}
	g, err := d.globals(ctx)
	if err != nil {
		return Job{}, err
	}
	spec, err := req.Validate(id, g)
	if err != nil {
		return Job{}, err
	}
	w, err := d.watch(ctx, id)
	if err != nil {
		return Job{}, err
	}
	defer w.close()

	written := d.opt.Now().UTC().Truncate(time.Millisecond)
	if err := d.config.SetEntry(ctx, jobspec.TableJob, id, spec.Fields()); err != nil {
		return Job{}, redisErr(err)
	}
	deadline := time.Now().Add(d.opt.VerdictTimeout)
	var starting *Job
	for {
		rec, ok, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
		if err != nil {
			d.removeUnanswered(id)
			return Job{}, redisErr(err)
		}
		if ok && !createdBefore(rec, written) {
			job, verr, final := admissionVerdict(id, rec, g.MaxConcurrentJobs)
			job.Port = spec.Port
			if final {
				return job, verr
			}
			starting = &job
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if err := w.wait(ctx, min(left, pollInterval)); err != nil {
			if starting == nil {
				d.removeUnanswered(id)
			}
			return Job{}, err
		}
	}
	if starting != nil {
		return *starting, nil // admitted; the datapath is still being set up
	}
	d.removeUnanswered(id)
	return Job{}, &Error{
		Status: StatusOf(CodeUnavailable), Code: CodeUnavailable, JobID: id,
		Message: fmt.Sprintf("telegend recorded no verdict for job %s within %v (is it running?); TELEGEN_JOB|%s was removed again",
			id, d.opt.VerdictTimeout, id),
	}
}

// removeUnanswered deletes a key that got no verdict, so nothing half-made is left behind.
func (d *Direct) removeUnanswered(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_ = d.config.DelEntry(ctx, jobspec.TableJob, id)
}

// admissionVerdict reads a fresh record of a job just written: final says whether it is the
// answer (job, or err for a refusal) or whether to keep waiting (starting, or a status unknown
// to this build).
func admissionVerdict(id string, rec map[string]string, maxJobs int) (job Job, err error, final bool) {
	job = JobFromRecord(id, rec)
	switch job.Status {
	case jobspec.Running, jobspec.Pending, jobspec.Stopping, jobspec.Done, jobspec.Stopped:
		return job, nil, true
	case jobspec.Rejected:
		switch job.Reason {
		case jobspec.ReasonConcurrencyLimit:
			return job, &Error{Status: StatusOf(CodeConcurrencyLimit), Code: CodeConcurrencyLimit, Message: CapMessage(maxJobs)}, true
		case jobspec.ReasonFeatureDisabled:
			e := featureDisabled()
			e.JobID = id
			return job, e, true
		}
		return job, jobFailed(id, job), true
	case jobspec.Failed:
		if field, why, ok := parseInvalid(job.Reason); ok {
			e := invalidField(RESTField(field), why)
			e.JobID = id
			return job, e, true
		}
		return job, jobFailed(id, job), true
	}
	return job, nil, false
}

func jobFailed(id string, job Job) *Error {
	e := newError(CodeJobFailed, "job %s %s: %s", id, job.Status, job.Reason)
	e.JobID = id
	return e
}

func featureDisabled() *Error {
	return newError(CodeFeatureDisabled, "telegen is disabled (CONFIG_DB FEATURE|telegen state); enable it with: config feature state telegen enabled")
}

// parseInvalid splits "invalid: <field>: <why>".
func parseInvalid(reason string) (field, why string, ok bool) {
	rest, ok := strings.CutPrefix(reason, jobspec.ReasonInvalid+": ")
	if !ok {
		return "", "", false
	}
	field, why, ok = strings.Cut(rest, ": ")
	return field, why, ok && field != ""
}

// createdBefore reports whether a record belongs to a run older than t (or has no created_at).
func createdBefore(rec map[string]string, t time.Time) bool {
	c := parseTime(rec[jobspec.FieldCreatedAt])
	return c.IsZero() || c.Before(t)
}

// Stop deletes TELEGEN_JOB|id and waits until telegend records the end of the run. A job that
// has already ended is returned as it ended; a key telegend never admitted is reported stopped
// once a short grace shows nothing running.
func (d *Direct) Stop(ctx context.Context, id string) (Job, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return Job{}, invalidArgument(err)
	}
	rec0, had, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
	if err != nil {
		return Job{}, redisErr(err)
	}
	n, err := d.config.Client().Exists(ctx, d.config.Key(jobspec.TableJob, id)).Result()
	if err != nil {
		return Job{}, redisErr(err)
	}
	keyExists := n == 1
	live0 := had && !jobspec.Status(rec0[jobspec.FieldStatus]).Terminal()
	if !keyExists && !had {
		return Job{}, notFound(id)
	}
	if !keyExists && !live0 {
		return d.withPort(ctx, JobFromRecord(id, rec0)), nil
	}
	w, err := d.watch(ctx, id)
	if err != nil {
		return Job{}, err
	}
	defer w.close()
	mark := d.opt.Now().UTC().Truncate(time.Millisecond)
	if keyExists {
		if err := d.config.DelEntry(ctx, jobspec.TableJob, id); err != nil {
			return Job{}, redisErr(err)
		}
	}
	start := time.Now()
	seenLive := live0
	for {
		rec, ok, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
		if err != nil {
			return Job{}, redisErr(err)
		}
		if ok {
			st := jobspec.Status(rec[jobspec.FieldStatus])
			sameRun := live0 && rec[jobspec.FieldCreatedAt] == rec0[jobspec.FieldCreatedAt]
			endedSince := !parseTime(rec[jobspec.FieldFinishedAt]).Before(mark)
			switch {
			case st.Terminal() && (sameRun || endedSince):
				return d.withPort(ctx, JobFromRecord(id, rec)), nil
			case !st.Terminal():
				seenLive = true
			}
		}
		elapsed := time.Since(start)
		if !seenLive && elapsed >= d.opt.StopGrace {
			return Job{ID: id, Status: jobspec.Stopped}, nil
		}
		if elapsed >= d.opt.VerdictTimeout {
			e := newError(CodeUnavailable, "TELEGEN_JOB|%s was deleted, but telegend recorded no end of the job within %v (is it running?)",
				id, d.opt.VerdictTimeout)
			e.JobID = id
			return Job{}, e
		}
		if err := w.wait(ctx, min(d.opt.VerdictTimeout-elapsed, pollInterval)); err != nil {
			return Job{}, err
		}
	}
}

// Get reads the job's STATE_DB record.
func (d *Direct) Get(ctx context.Context, id string) (Job, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return Job{}, invalidArgument(err)
	}
	rec, ok, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
	if err != nil {
		return Job{}, redisErr(err)
	}
	if !ok {
		n, err := d.config.Client().Exists(ctx, d.config.Key(jobspec.TableJob, id)).Result()
		if err != nil {
			return Job{}, redisErr(err)
		}
		if n == 1 {
			e := newError(CodeNotFound, "job %s has no verdict yet: TELEGEN_JOB|%s exists, but telegend has not recorded it (is it running?)", id, id)
			e.JobID = id
			return Job{}, e
		}
		return Job{}, notFound(id)
	}
	return d.withPort(ctx, JobFromRecord(id, rec)), nil
}

func notFound(id string) *Error {
	e := newError(CodeNotFound, "job %s not found", id)
	e.JobID = id
	return e
}

// withPort fills in the port: from the live key, else from the result, else the interface.
func (d *Direct) withPort(ctx context.Context, j Job) Job {
	if p, err := d.config.Client().HGet(ctx, d.config.Key(jobspec.TableJob, j.ID), jobspec.FieldPort).Result(); err == nil && p != "" {
		j.Port = p
		return j
	}
	if p, err := d.state.Client().HGet(ctx, d.state.Key(jobspec.TableResult, j.ID), jobspec.FieldPort).Result(); err == nil && p != "" {
		j.Port = p
		return j
	}
	j.Port = j.Interface
	return j
}

// List returns every job STATE_DB has a record of, by created_at.
func (d *Direct) List(ctx context.Context) ([]Job, error) {
	records, err := d.state.GetTable(ctx, jobspec.TableJobState)
	if err != nil {
		return nil, redisErr(err)
	}
	keys, err := d.config.GetTable(ctx, jobspec.TableJob)
	if err != nil {
		return nil, redisErr(err)
	}
	ports := make(map[string]*redis.StringCmd)
	_, err = d.state.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for id := range records {
			if keys[id][jobspec.FieldPort] == "" {
				ports[id] = p.HGet(ctx, d.state.Key(jobspec.TableResult, id), jobspec.FieldPort)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr(err)
	}
	jobs := make([]Job, 0, len(records))
	for id, rec := range records {
		j := JobFromRecord(id, rec)
		switch {
		case keys[id][jobspec.FieldPort] != "":
			j.Port = keys[id][jobspec.FieldPort]
		case ports[id] != nil && ports[id].Val() != "":
			j.Port = ports[id].Val()
		default:
			j.Port = j.Interface
		}
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b Job) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return jobs, nil
}

// Result reads TELEGEN_RESULT_TABLE|id.
func (d *Direct) Result(ctx context.Context, id string) (Result, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return nil, invalidArgument(err)
	}
	fields, ok, err := d.state.GetEntry(ctx, jobspec.TableResult, id)
	if err != nil {
		return nil, redisErr(err)
	}
	if ok {
		return ResultFromFields(id, fields), nil
	}
	rec, had, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
	if err != nil {
		return nil, redisErr(err)
	}
	if !had {
		return nil, notFound(id)
	}
	st := jobspec.Status(rec[jobspec.FieldStatus])
	if !st.Terminal() {
		e := newError(CodeNotReady, "job %s is %s; its result is written when it ends", id, st)
		e.JobID = id
		return nil, e
	}
	reason := ""
	if r := rec[jobspec.FieldReason]; r != "" {
		reason = " (" + r + ")"
	}
	e := newError(CodeNotFound, "job %s ended %s%s without a result (or its result was pruned)", id, st, reason)
	e.JobID = id
	return nil, e
}

// Pcap opens the capture of a pcaplike job: the file telegend names in the result's pcap_file,
// which must be <dir>/<job>.pcapng (and in CaptureDir when that is set). A job still running is
// not_ready (409), as is a job that is not pcaplike; a pcaplike job that kept no file is
// not_found.
func (d *Direct) Pcap(ctx context.Context, id string) (io.ReadCloser, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return nil, invalidArgument(err)
	}
	res, hasRes, err := d.state.GetEntry(ctx, jobspec.TableResult, id)
	if err != nil {
		return nil, redisErr(err)
	}
	rec, hasRec, err := d.state.GetEntry(ctx, jobspec.TableJobState, id)
	if err != nil {
		return nil, redisErr(err)
	}
	spec, hasKey, err := d.config.GetEntry(ctx, jobspec.TableJob, id)
	if err != nil {
		return nil, redisErr(err)
	}
	if !hasRes && !hasRec && !hasKey {
		return nil, notFound(id)
	}
	if file := res[fieldPcapFile]; file != "" {
		return d.openCapture(id, file)
	}
	detail := cmp.Or(spec[jobspec.FieldResultDetail], res[jobspec.FieldResultDetail])
	_, kept := res[fieldPcapFile] // a pcaplike result names its file, "" when none was kept
	pcaplike := jobspec.ResultDetail(detail) == jobspec.PcapLike || kept
	var e *Error
	switch st := jobspec.Status(rec[jobspec.FieldStatus]); {
	case !pcaplike:
		e = newError(CodeNotReady, "job %s has result_detail %s; only result_detail pcaplike jobs keep a pcap",
			id, cmp.Or(detail, string(jobspec.Summary)))
	case !hasRes && (!hasRec || !st.Terminal()):
		e = newError(CodeNotReady, "job %s is %s; its capture is kept when it ends", id, cmp.Or(string(st), "not yet admitted"))
	default:
		e = newError(CodeNotFound, "job %s ended without a capture file (see pcap_dropped in its result)", id)
	}
	e.JobID = id
	return nil, e
}

// fieldPcapFile is the result member naming a pcaplike job's capture.
const fieldPcapFile = "pcap_file"

// openCapture opens a capture file telegend named, refusing anything but <dir>/<job>.pcapng.
func (d *Direct) openCapture(id, path string) (io.ReadCloser, error) {
	refuse := func(why string) error {
		e := newError(CodeInternal, "job %s: refusing pcap_file %q: %s", id, path, why)
		e.JobID = id
		return e
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || filepath.Base(path) != id+".pcapng" {
		return nil, refuse("not <dir>/" + id + ".pcapng")
	}
	if dir := d.opt.CaptureDir; dir != "" && filepath.Dir(path) != filepath.Clean(dir) {
		return nil, refuse("not in the capture directory " + dir)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		e := newError(CodeNotFound, "job %s: capture file %s is gone", id, path)
		e.JobID = id
		return nil, e
	}
	if err != nil {
		return nil, refuse(err.Error())
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, refuse("not a regular file")
	}
	return f, nil
}

func (d *Direct) featureEnabled(ctx context.Context) (bool, error) {
	f, _, err := d.config.GetEntry(ctx, jobspec.TableFeature, jobspec.FeatureName)
	if err != nil {
		return false, redisErr(err)
	}
	switch f["state"] {
	case "disabled", "always_disabled":
		return false, nil
	}
	return true, nil
}

func (d *Direct) globals(ctx context.Context) (jobspec.Globals, error) {
	f, _, err := d.config.GetEntry(ctx, jobspec.TableGlobal, jobspec.KeyGlobal)
	if err != nil {
		return jobspec.Globals{}, redisErr(err)
	}
	g, err := jobspec.GlobalsFromFields(f)
	if err != nil {
		return jobspec.Globals{}, newError(CodeInternal, "CONFIG_DB %s|%s: %v", jobspec.TableGlobal, jobspec.KeyGlobal, err)
	}
	return g, nil
}

// redisErr classifies a Redis failure: a server that is not there is unavailable, an error
// reply is internal; context errors pass through.
func redisErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return newError(CodeInternal, "redis: %v", err)
	}
	return newError(CodeUnavailable, "redis unavailable: %v", err)
}

// recordWatch follows one STATE_DB record's keyspace channel.
type recordWatch struct {
	ps     *redis.PubSub
	broken bool // the subscription failed; wait just sleeps (the caller re-reads anyway)
}

// watch subscribes to __keyspace@<STATE_DB id>__:TELEGEN_JOB_TABLE|<id> and waits for the
// server's confirmation, so a write made after it returns cannot go unnoticed.
func (d *Direct) watch(ctx context.Context, id string) (*recordWatch, error) {
	channel := fmt.Sprintf("__keyspace@%d__:%s", d.state.ID(), d.state.Key(jobspec.TableJobState, id))
	ps := d.state.Client().Subscribe(ctx, channel)
	deadline := time.Now().Add(confirmTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			_ = ps.Close()
			return nil, newError(CodeUnavailable, "redis unavailable: no confirmation of SUBSCRIBE %s within %v", channel, confirmTimeout)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			_ = ps.Close()
			return nil, redisErr(err)
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "subscribe" && s.Channel == channel {
			return &recordWatch{ps: ps}, nil
		}
	}
}

// wait returns after an event on the channel, after at most d, or with ctx's error.
func (w *recordWatch) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if !w.broken {
		_, err := w.ps.ReceiveTimeout(ctx, d)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !isTimeout(err) {
			w.broken = true // keep polling without events
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (w *recordWatch) close() { _ = w.ps.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
