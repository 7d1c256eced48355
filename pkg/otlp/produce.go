package otlp

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// producer is the sdkmetric.Producer of everything exported. It emits each job's figures exactly
// as its latest snapshot holds them (the kernel's counters are already cumulative), so the SDK
// keeps no per-series state: a job's series vanish when the producer stops emitting them.
type producer struct{ e *Exporter }

// Produce implements sdkmetric.Producer.
func (p producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	return p.e.produce(), nil
}

// jobView is one job as a collection sees it.
type jobView struct {
	j       *job
	snap    aggregate.Snapshot
	endedAt time.Time // zero while running
}

// healthView is the agent's health as a collection sees it.
type healthView struct {
	running        int
	started        uint64
	ended          map[endedKey]uint64
	exportFailures uint64
}

// produce builds one collection: the agent's scope, then one scope per exported job.
func (e *Exporter) produce() []metricdata.ScopeMetrics {
	now := e.now()
	views, h := e.snapshotJobs()
	out := make([]metricdata.ScopeMetrics, 0, 1+len(views))
	out = append(out, e.healthScope(h, now))
	for _, v := range views {
		out = append(out, v.scope(now))
	}
	return out
}

func (e *Exporter) healthScope(h healthView, now time.Time) metricdata.ScopeMetrics {
	ms := []metricdata.Metrics{
		gauge(MetricJobsRunning, "Jobs holding a slot (started and not yet ended).", "{job}",
			point(*attribute.EmptySet(), e.created, now, uint64(h.running))),
		sum(MetricJobsStarted, "Jobs that started running since telegend started.", "{job}",
			point(*attribute.EmptySet(), e.created, now, h.started)),
	}
	if len(h.ended) > 0 {
		pts := make([]metricdata.DataPoint[int64], 0, len(h.ended))
		for k, n := range h.ended {
			set := attribute.NewSet(attribute.String(AttrStatus, k.status), attribute.String(AttrReason, k.reason))
			pts = append(pts, point(set, e.created, now, n))
		}
		sortPoints(pts)
		ms = append(ms, sum(MetricJobsEnded, "Jobs that reached a terminal status (rejections included), by status and reason code.", "{job}", pts...))
	}
	ms = append(ms, sum(MetricExportFailures, "OTLP export requests that failed.", "{request}",
		point(*attribute.EmptySet(), e.created, now, h.exportFailures)))
	return metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: ScopeName}, Metrics: ms}
}

// errorTypes are the error.type values of network.errors, in the order of jobSets.errors.
var errorTypes = [...]string{"l2_crc", "l3_checksum", "tcp_retrans", "malformed"}

// jobSets are a job's attribute sets that never change, built once at Start.
type jobSets struct {
	scope    attribute.Set    // telegen.job.id alone: the job's scope
	base     attribute.Set    // job id, device, port (+ vlan, ip_protocol when the filter fixes them)
	dir      [2]attribute.Set // base + direction ingress, egress
	errors   [len(errorTypes)]attribute.Set
	attached attribute.Set
	jobID    attribute.KeyValue
}

func newJobSets(spec jobspec.Spec, iface string) jobSets {
	id := attribute.String(AttrJobID, spec.ID)
	where := []attribute.KeyValue{id, attribute.String(AttrDevice, iface), attribute.String(AttrPort, spec.Port)}
	base := slices.Clone(where)
	// The totals count only packets that passed the job's filters, so a filter on a single
	// VLAN or IP protocol says what every counted packet carries.
	if spec.VLAN != 0 {
		base = append(base, attribute.Int(AttrVLAN, int(spec.VLAN)))
	}
	if len(spec.IPProtos) == 1 {
		base = append(base, attribute.String(AttrIPProtocol, aggregate.ProtoName(spec.IPProtos[0])))
	}
	// NewSet sorts its argument in place, so each set gets a fresh slice.
	set := func(kvs []attribute.KeyValue, more ...attribute.KeyValue) attribute.Set {
		return attribute.NewSet(append(slices.Clip(slices.Clone(kvs)), more...)...)
	}
	s := jobSets{
		scope:    attribute.NewSet(id),
		base:     set(base),
		dir:      [2]attribute.Set{set(base, attribute.String(AttrDirection, "ingress")), set(base, attribute.String(AttrDirection, "egress"))},
		attached: set(where),
		jobID:    id,
	}
	for i, t := range errorTypes {
		s.errors[i] = set(where, attribute.String(AttrErrorType, t))
	}
	return s
}

// flowCache keeps the attribute sets of a job's top-K flows between collections, so a steady
// top-K costs no attribute allocations. Entries not in the latest top-K are dropped, so it holds
// at most two collections' worth of flows. Collections may run concurrently (a replaced
// pipeline's last export), hence its own lock.
type flowCache struct {
	mu   sync.Mutex
	gen  uint64
	sets map[aggregate.FlowKey]flowSet
}

type flowSet struct {
	set attribute.Set
	gen uint64
}

// scope is the job's metrics for one collection.
func (v jobView) scope(now time.Time) metricdata.ScopeMetrics {
	j, s := v.j, v.snap
	ts := now
	if !v.endedAt.IsZero() {
		ts = v.endedAt // figures of an ended job are final as of its end
	}
	start := j.start
	var pkts, bytes []metricdata.DataPoint[int64]
	if j.spec.Direction.Ingress() {
		pkts = append(pkts, point(j.sets.dir[0], start, ts, s.Ingress.Packets))
		bytes = append(bytes, point(j.sets.dir[0], start, ts, s.Ingress.Bytes))
	}
	if j.spec.Direction.Egress() {
		pkts = append(pkts, point(j.sets.dir[1], start, ts, s.Egress.Packets))
		bytes = append(bytes, point(j.sets.dir[1], start, ts, s.Egress.Bytes))
	}
	errs := [len(errorTypes)]uint64{s.Errors.L2CRC, s.Errors.L3Checksum, s.Errors.TCPRetrans, s.Errors.Malformed}
	errPts := make([]metricdata.DataPoint[int64], len(errorTypes))
	for i, n := range errs {
		errPts[i] = point(j.sets.errors[i], start, ts, n)
	}
	ms := make([]metricdata.Metrics, 0, 8)
	ms = append(ms,
		sum(MetricPackets, "Packets that matched the job's filters, counted exactly in the kernel.", "{packet}", pkts...),
		sum(MetricBytes, "Bytes of those packets (frame length on the wire, without FCS).", "By", bytes...),
		sum(MetricErrors, "Problems seen in the job's packets, by error.type.", "{error}", errPts...),
	)
	if len(s.TopFlows) > 0 {
		fp, fb := j.flowPoints(s.TopFlows, start, ts)
		ms = append(ms,
			sum(MetricFlowPackets, "Packets of the job's top-K flows by bytes (estimated from samples when sample_rate > 1).", "{packet}", fp...),
			sum(MetricFlowBytes, "Bytes of the job's top-K flows by bytes (estimated from samples when sample_rate > 1).", "By", fb...),
		)
	}
	for _, name := range [...]string{MetricLatency, MetricTCPRTT} {
		h, ok := s.Latency[name]
		if !ok {
			continue
		}
		if hp, ok := histPoint(j.sets.base, start, ts, h); ok {
			ms = append(ms, metricdata.Metrics{
				Name: name, Description: histDescriptions[name], Unit: "ns",
				Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality,
					DataPoints: []metricdata.HistogramDataPoint[int64]{hp}},
			})
		}
	}
	attached := uint64(1)
	if !v.endedAt.IsZero() {
		attached = 0
	}
	ms = append(ms, gauge(MetricJobAttached, "1 while the job's programs are attached, 0 in its final export.", "1",
		point(j.sets.attached, start, ts, attached)))
	if p := s.Programs; p.Known {
		ms = append(ms,
			sum(MetricBPFRunTime, "Time the job's eBPF programs ran, as the kernel accounts it (kernel.bpf_stats_enabled).", "ns",
				point(j.sets.attached, start, ts, uint64(p.RunTime.Nanoseconds()))),
			sum(MetricBPFRuns, "Runs of the job's eBPF programs (one per frame on its hooks), as the kernel accounts them.", "{run}",
				point(j.sets.attached, start, ts, p.Runs)),
		)
	}
	return metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: ScopeName, Attributes: j.sets.scope}, Metrics: ms}
}

var histDescriptions = map[string]string{
	MetricLatency: "Latency of the job's sampled packets, in nanoseconds.",
	MetricTCPRTT:  "TCP round-trip time of the job's sampled flows, in nanoseconds.",
}

// flowPoints are flow.packets and flow.bytes of the top-K, in the snapshot's order.
func (j *job) flowPoints(flows []aggregate.Flow, start, ts time.Time) (pkts, bytes []metricdata.DataPoint[int64]) {
	pkts = make([]metricdata.DataPoint[int64], len(flows))
	bytes = make([]metricdata.DataPoint[int64], len(flows))
	c := &j.flows
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.sets == nil {
		c.sets = make(map[aggregate.FlowKey]flowSet, len(flows))
	}
	for i, f := range flows {
		fs, ok := c.sets[f.Key]
		if !ok {
			fs.set = flowAttrs(j.sets.jobID, f.Key)
		}
		fs.gen = c.gen
		c.sets[f.Key] = fs
		st := start
		if !f.FirstSeen.IsZero() && f.FirstSeen.After(start) {
			st = f.FirstSeen // a flow evicted and seen again starts counting afresh
		}
		pkts[i] = point(fs.set, st, ts, f.Packets)
		bytes[i] = point(fs.set, st, ts, f.Bytes)
	}
	if len(c.sets) > len(flows) {
		for k, fs := range c.sets {
			if fs.gen != c.gen {
				delete(c.sets, k)
			}
		}
	}
	return pkts, bytes
}

func flowAttrs(jobID attribute.KeyValue, k aggregate.FlowKey) attribute.Set {
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	return attribute.NewSet(
		jobID,
		attribute.String(AttrSrc, addr(k.Src)),
		attribute.String(AttrDst, addr(k.Dst)),
		attribute.Int(AttrL4SrcPort, int(k.SrcPort)),
		attribute.Int(AttrL4DstPort, int(k.DstPort)),
		attribute.String(AttrProtocol, aggregate.ProtoName(k.Proto)),
		attribute.Int(AttrVLAN, int(k.VLAN)),
	)
}

// histPoint converts a kernel histogram; a malformed one (counts not one more than bounds,
// bounds not increasing) is not exported.
func histPoint(set attribute.Set, start, ts time.Time, h aggregate.Histogram) (metricdata.HistogramDataPoint[int64], bool) {
	if len(h.Counts) != len(h.Bounds)+1 {
		return metricdata.HistogramDataPoint[int64]{}, false
	}
	bounds := make([]float64, len(h.Bounds))
	for i, b := range h.Bounds {
		if i > 0 && b <= h.Bounds[i-1] {
			return metricdata.HistogramDataPoint[int64]{}, false
		}
		bounds[i] = float64(b)
	}
	counts := make([]uint64, len(h.Counts))
	var n uint64
	for i, c := range h.Counts {
		counts[i] = c
		n += c
	}
	// OTLP requires count to equal the sum of the buckets.
	return metricdata.HistogramDataPoint[int64]{
		Attributes: set, StartTime: start, Time: ts,
		Count: n, Bounds: bounds, BucketCounts: counts, Sum: clampInt64(h.Sum),
	}, true
}

func point(set attribute.Set, start, ts time.Time, v uint64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: set, StartTime: start, Time: ts, Value: clampInt64(v)}
}

func sum(name, desc, unit string, pts ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: unit, Data: metricdata.Sum[int64]{
		Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: pts}}
}

func gauge(name, desc, unit string, pts ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: unit, Data: metricdata.Gauge[int64]{DataPoints: pts}}
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// sortPoints orders points by their attributes' encoding, so collections are deterministic.
func sortPoints(pts []metricdata.DataPoint[int64]) {
	enc := attribute.DefaultEncoder()
	slices.SortFunc(pts, func(a, b metricdata.DataPoint[int64]) int {
		return strings.Compare(a.Attributes.Encoded(enc), b.Attributes.Encoded(enc))
	})
}
