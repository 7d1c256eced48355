package reconciler

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// Exporter ships running jobs' measurements elsewhere (OTLP metrics). The reconciler calls it
// from its loop goroutine, so no method may block on the network: exports happen in the
// exporter's own goroutines, bounded in memory when the far end is slow or away.
type Exporter interface {
	// Configure applies TELEGEN|global (endpoint, interval); called whenever settings load.
	Configure(g jobspec.Globals)
	// Start begins exporting a job that just started running (it may have otlp_export=false, in
	// which case the exporter records that and exports nothing).
	Start(spec jobspec.Spec, iface string)
	// Update hands over the job's latest measurements.
	Update(jobID string, snap aggregate.Snapshot)
	// End hands over the final measurements and returns the result document's otel_export part
	// as it stands now. The exporter then makes a final export in the background and calls done
	// (from any goroutine) with otel_export as it stands after it.
	End(jobID string, snap aggregate.Snapshot, done func(otelExport map[string]any)) (otelExport map[string]any)
	// Verdict reports every job's end state (rejections and failures included), for the
	// agent's own health metrics.
	Verdict(jobID string, status jobspec.Status, reason string)
}

// nopExporter is the exporter when none is configured.
type nopExporter struct{}

func (nopExporter) Configure(jobspec.Globals)              {}
func (nopExporter) Start(jobspec.Spec, string)             {}
func (nopExporter) Update(string, aggregate.Snapshot)      {}
func (nopExporter) Verdict(string, jobspec.Status, string) {}
func (nopExporter) End(string, aggregate.Snapshot, func(map[string]any)) map[string]any {
	return map[string]any{"exported": false, "endpoint": ""}
}

// resultPatch is the final otel_export of a finished job's result, applied by the loop.
type resultPatch struct {
	id         string
	otelExport map[string]any
}

// patchResult queues a job's final otel_export. Safe from any goroutine.
func (r *Reconciler) patchResult(id string, otelExport map[string]any) {
	r.patchMu.Lock()
	r.patches = append(r.patches, resultPatch{id, maps.Clone(otelExport)})
	r.patchMu.Unlock()
	r.q.Add("")
}

// applyPatches writes queued result patches; one that fails stays queued for the next pass. A
// job whose result is not written yet takes the patch into memory, so it is written with it.
func (r *Reconciler) applyPatches(ctx context.Context) {
	r.patchMu.Lock()
	todo := r.patches
	r.patches = nil
	r.patchMu.Unlock()
	for i, p := range todo {
		if j := r.jobs[p.id]; j != nil && !j.resultWritten {
			j.otelExport = p.otelExport
			continue
		}
		fields := map[string]string{"otel_export": otelExportField(p.otelExport)}
		if err := r.state.PatchResult(ctx, p.id, fields); err != nil {
			r.log.Warn("updating result failed; will retry", "job", p.id, "err", err)
			r.patchMu.Lock()
			r.patches = append(todo[i:], r.patches...)
			r.patchMu.Unlock()
			r.q.AddAfter("", time.Second)
			return
		}
	}
}

func otelExportField(v map[string]any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":"unencodable otel_export"}`
	}
	return string(b)
}
