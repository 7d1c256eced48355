// Package otlp owns telegend's OpenTelemetry export: one SDK MeterProvider with the OTLP/HTTP
// exporter and a periodic reader, fed by a producer that turns running jobs' snapshots and the
// agent's own health into metric data, with export outcomes counted per job.
package otlp

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// Switch names the switch in the resource of every export. Empty fields are left out, except
// HostName, which falls back to the kernel's host name.
type Switch struct {
	HostName string // DEVICE_METADATA|localhost hostname
	Platform string // DEVICE_METADATA|localhost platform
	HWSKU    string // DEVICE_METADATA|localhost hwsku
}

// Options configures an Exporter; zero values take the defaults.
type Options struct {
	Switch Switch
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // default: time.Now
}

// Exporter exports the measurements of running jobs over OTLP/HTTP. It has the method set of
// reconciler.Exporter and, like that interface asks, no method blocks on the network: exports run
// in the SDK's reader goroutine and in short-lived goroutines for jobs' final exports. Safe for
// concurrent use.
type Exporter struct {
	log     *slog.Logger
	now     func() time.Time
	res     *resource.Resource
	created time.Time

	mu      sync.Mutex
	closed  bool
	cfg     pipelineConfig // settings the pipeline was built for ("" endpoint: export off)
	pipe    *pipeline      // nil while export is off
	jobs    map[string]*job
	ending  map[*job]struct{} // ended jobs waiting for their final export
	health  health
	failing bool // the last export failed (for logging transitions only)

	bg sync.WaitGroup // final exports and shutdowns of replaced pipelines
}

// health is the agent's own counters, guarded by Exporter.mu.
type health struct {
	started        uint64
	ended          map[endedKey]uint64
	exportFailures uint64
}

type endedKey struct{ status, reason string }

// job is one run the exporter knows. spec, iface, start and the attribute sets are set by Start
// and never change; the rest is guarded by Exporter.mu, except flows (see flowCache).
type job struct {
	spec  jobspec.Spec
	iface string
	start time.Time

	snap    aggregate.Snapshot
	endedAt time.Time // zero while running
	stats   exportStats

	sets  jobSets
	flows flowCache
}

// exportStats is what the result's otel_export tells about a job's exports.
type exportStats struct {
	endpoint    string // where the job's points were last sent
	attempts    int    // export requests that carried the job's points
	failed      int
	lastError   string
	lastSuccess time.Time
}

// New returns an Exporter with export off; Configure turns it on.
func New(opt Options) *Exporter {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Exporter{
		log:     opt.Logger.With("component", "otlp"),
		now:     opt.Now,
		res:     newResource(opt.Switch),
		created: opt.Now(),
		jobs:    make(map[string]*job),
		ending:  make(map[*job]struct{}),
		health:  health{ended: make(map[endedKey]uint64)},
	}
}

// Configure applies TELEGEN|global: otlp_endpoint ("" turns export off) and export_interval_sec.
// It may be called on every settings load: only a change of those two rebuilds the pipeline. The
// replaced pipeline makes a last export and shuts down in the background.
func (e *Exporter) Configure(g jobspec.Globals) {
	want := pipelineConfig{endpoint: g.OTLPEndpoint, interval: time.Duration(max(g.ExportIntervalSec, 1)) * time.Second}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || want == e.cfg {
		return
	}
	old := e.pipe
	e.cfg, e.pipe = want, nil
	if want.endpoint != "" {
		p, err := e.newPipeline(want)
		if err != nil {
			e.log.Error("otlp export off: bad settings", "field", jobspec.GlobalOTLPEndpoint, "value", want.endpoint, "err", err)
		} else {
			e.pipe = p
			e.log.Info("otlp export on", "endpoint", p.url, "interval", want.interval, "timeout", p.timeout)
		}
	} else {
		e.log.Info("otlp export off", "reason", jobspec.GlobalOTLPEndpoint+" is empty")
	}
	if old != nil {
		e.bg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*old.timeout)
			defer cancel()
			if err := old.shutdown(ctx); err != nil {
				e.log.Debug("replaced otlp pipeline shut down with an error", "endpoint", old.url, "err", err)
			}
		})
	}
}

// Start begins exporting a job that just started running on netdev iface. A job with
// otlp_export=false is counted in the agent's health but produces no series of its own.
func (e *Exporter) Start(spec jobspec.Spec, iface string) {
	j := &job{spec: spec, iface: iface, start: e.now()}
	j.sets = newJobSets(spec, iface)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jobs[spec.ID] = j
	e.health.started++
}

// Update hands over a running job's latest measurements; unknown ids are ignored.
func (e *Exporter) Update(jobID string, snap aggregate.Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j := e.jobs[jobID]; j != nil {
		j.snap = snap
	}
}

// End takes the job's final measurements and returns the result's otel_export as it stands.
// When the job is exported, a final export (bounded by a timeout) follows in the background,
// after which the job's series are released and done is called, from another goroutine, with
// otel_export as it stands then. When nothing is exported (otlp_export=false, export off, or a
// job Start never saw) done is not called: the returned value is final.
func (e *Exporter) End(jobID string, snap aggregate.Snapshot, done func(otelExport map[string]any)) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[jobID]
	if j == nil {
		return map[string]any{"exported": false, "endpoint": "", "reason": "job not known to the exporter"}
	}
	delete(e.jobs, jobID)
	j.snap, j.endedAt = snap, e.now()
	switch {
	case !j.spec.OTLPExport:
		return j.stats.result("otlp_export is false")
	case e.closed:
		return j.stats.result("exporter closed")
	case e.pipe == nil:
		return j.stats.result(jobspec.GlobalOTLPEndpoint + " is empty")
	}
	e.ending[j] = struct{}{}
	p := e.pipe
	j.stats.endpoint = p.url
	before := j.stats.attempts
	e.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.finalTimeout())
		defer cancel()
		err := p.flush(ctx)
		e.mu.Lock()
		delete(e.ending, j)
		if err != nil && j.stats.attempts == before {
			// The final export never reported back (timed out, or the pipeline was replaced).
			j.stats.attempts++
			j.stats.failed++
			j.stats.lastError = truncate("final export: " + err.Error())
		}
		v := j.stats.result("")
		e.mu.Unlock()
		if done != nil {
			done(v)
		}
	})
	return j.stats.result("")
}

// Verdict records a job's terminal status (done, stopped, failed, rejected) with its reason, for
// the telegen.jobs.ended counter. The reconciler may call it for every verdict it records.
func (e *Exporter) Verdict(jobID string, status jobspec.Status, reason string) {
	k := endedKey{string(status), reasonCode(reason)}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.health.ended[k]++
}

// Flush collects and exports everything now, waiting at most until ctx ends. It returns an
// error only when the export could not be attempted (export off, timeout); the outcome of the
// attempt is counted like any other export.
func (e *Exporter) Flush(ctx context.Context) error {
	e.mu.Lock()
	p := e.pipe
	e.mu.Unlock()
	if p == nil {
		return errExportOff
	}
	return p.flush(ctx)
}

// Close waits (until ctx ends) for jobs' final exports, then shuts the pipeline down with a last
// export. Later calls of the other methods export nothing.
func (e *Exporter) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	waited := make(chan struct{})
	go func() { e.bg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	e.mu.Lock()
	p := e.pipe
	e.pipe, e.cfg = nil, pipelineConfig{}
	e.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// recordExport counts the outcome of one export request that carried the points of jobIDs.
func (e *Exporter) recordExport(url string, jobIDs []string, err error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	apply := func(j *job) {
		j.stats.endpoint = url
		j.stats.attempts++
		if err != nil {
			j.stats.failed++
			j.stats.lastError = truncate(err.Error())
		} else {
			j.stats.lastSuccess = now
		}
	}
	for _, id := range jobIDs {
		if j := e.jobs[id]; j != nil {
			apply(j)
		}
		for j := range e.ending {
			if j.spec.ID == id {
				apply(j)
			}
		}
	}
	if err != nil {
		e.health.exportFailures++
		if !e.failing {
			e.log.Warn("otlp export failed; counting failures until it recovers", "endpoint", url, "err", err)
		} else {
			e.log.Debug("otlp export failed", "endpoint", url, "err", err)
		}
	} else if e.failing {
		e.log.Info("otlp export recovered", "endpoint", url, "failures_so_far", e.health.exportFailures)
	}
	e.failing = err != nil
}

// result is the result document's otel_export. reason, when not empty, says why nothing was
// exported.
func (s exportStats) result(reason string) map[string]any {
	m := map[string]any{
		"exported":        !s.lastSuccess.IsZero(),
		"endpoint":        s.endpoint,
		"failed_exports":  s.failed,
		"last_error":      s.lastError,
		"last_success_at": jobspec.FormatTime(s.lastSuccess),
	}
	if reason != "" {
		m["reason"] = reason
	}
	return m
}

func truncate(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// reasonCode is a STATE_DB reason without its details ("invalid: port: …" -> "invalid"), so the
// telegen.jobs.ended counter has a bounded set of attribute values.
func reasonCode(reason string) string {
	code, _, _ := strings.Cut(reason, ":")
	switch code {
	case "", jobspec.ReasonConcurrencyLimit, jobspec.ReasonFeatureDisabled, jobspec.ReasonDaemonRestart,
		jobspec.ReasonExpired, jobspec.ReasonInvalid, jobspec.ReasonMirrorFailed, jobspec.ReasonAttachFailed,
		"daemon_shutdown":
		return code
	}
	return "other"
}

func newResource(sw Switch) *resource.Resource {
	host := sw.HostName
	if host == "" {
		host = osHostname()
	}
	attrs := []attribute.KeyValue{attribute.String(ResServiceName, ServiceName)}
	for k, v := range map[string]string{ResHostName: host, ResPlatform: sw.Platform, ResHWSKU: sw.HWSKU} {
		if v != "" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	return resource.NewSchemaless(attrs...)
}

// snapshotJobs copies, under the lock, what a collection needs: the exported jobs (running and
// ending) with their latest snapshots, sorted by id, and the health counters.
func (e *Exporter) snapshotJobs() ([]jobView, healthView) {
	e.mu.Lock()
	defer e.mu.Unlock()
	views := make([]jobView, 0, len(e.jobs)+len(e.ending))
	for _, j := range e.jobs {
		if j.spec.OTLPExport {
			views = append(views, jobView{j: j, snap: j.snap})
		}
	}
	for j := range e.ending {
		views = append(views, jobView{j: j, snap: j.snap, endedAt: j.endedAt})
	}
	slices.SortFunc(views, func(a, b jobView) int {
		if c := strings.Compare(a.j.spec.ID, b.j.spec.ID); c != 0 {
			return c
		}
		return a.endedAt.Compare(b.endedAt)
	})
	h := healthView{
		running:        len(e.jobs),
		started:        e.health.started,
		ended:          maps.Clone(e.health.ended),
		exportFailures: e.health.exportFailures,
	}
	return views, h
}
