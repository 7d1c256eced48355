package otlp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var (
	t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC) // exporter created
	t1 = t0.Add(5 * time.Second)                      // job started
	t2 = t1.Add(3 * time.Second)                      // collection
	t3 = t2.Add(time.Second)                          // job ended
)

// collect runs one collection of e's producer through the SDK's manual reader.
func collect(t *testing.T, e *Exporter) metricdata.ResourceMetrics {
	t.Helper()
	r := sdkmetric.NewManualReader(sdkmetric.WithProducer(producer{e}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r), sdkmetric.WithResource(e.res))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func testSpec(id string) jobspec.Spec {
	return jobspec.Spec{ID: id, Port: "Ethernet16", Direction: jobspec.Both, SampleRate: 1, OTLPExport: true}
}

func kv(k, v string) attribute.KeyValue { return attribute.String(k, v) }

func dp(start, ts time.Time, v int64, kvs ...attribute.KeyValue) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(kvs...), StartTime: start, Time: ts, Value: v}
}

func healthScope(start, ts time.Time, running, started, failures int64, ended ...metricdata.DataPoint[int64]) metricdata.ScopeMetrics {
	ms := []metricdata.Metrics{
		gauge(MetricJobsRunning, "Jobs holding a slot (started and not yet ended).", "{job}", dp(start, ts, running)),
		sum(MetricJobsStarted, "Jobs that started running since telegend started.", "{job}", dp(start, ts, started)),
	}
	if len(ended) > 0 {
		ms = append(ms, sum(MetricJobsEnded, "Jobs that reached a terminal status (rejections included), by status and reason code.", "{job}", ended...))
	}
	ms = append(ms, sum(MetricExportFailures, "OTLP export requests that failed.", "{request}", dp(start, ts, failures)))
	return metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: ScopeName}, Metrics: ms}
}

// TestInstrumentMapping pins every instrument, attribute and timestamp of one job's collection.
func TestInstrumentMapping(t *testing.T) {
	clk := &clock{t: t0}
	e := New(Options{Switch: Switch{HostName: "sw1", Platform: "x86_64-kvm_x86_64-r0", HWSKU: "Force10-S6000"}, Now: clk.Now})
	spec := testSpec("j1")
	spec.VLAN = 100
	spec.IPProtos = []uint8{6}
	clk.Set(t1)
	e.Start(spec, "Ethernet16")
	flowStart := t1.Add(time.Second)
	snap := aggregate.Snapshot{
		Ingress:    aggregate.DirectionCounts{Packets: 10, Bytes: 1000},
		Egress:     aggregate.DirectionCounts{Packets: 4, Bytes: 256},
		SampleRate: 1,
		Errors:     aggregate.Errors{L2CRC: 1, L3Checksum: 2, TCPRetrans: 3, Malformed: 4},
		TopFlows: []aggregate.Flow{
			{Key: aggregate.FlowKey{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
				SrcPort: 1234, DstPort: 80, Proto: 6, VLAN: 100}, Packets: 8, Bytes: 900, FirstSeen: flowStart},
			{Key: aggregate.FlowKey{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
				Proto: 58}, Packets: 2, Bytes: 100}, // no FirstSeen: counts from the job's start
		},
		Latency: map[string]aggregate.Histogram{
			"network.latency": {Bounds: []uint64{1000, 10000}, Counts: []uint64{1, 2, 3}, Sum: 70000, Count: 6},
			"tcp.rtt":         {Bounds: []uint64{500}, Counts: []uint64{4, 0}, Sum: 1200, Count: 4},
			"ignored":         {Bounds: []uint64{1}, Counts: []uint64{1, 1}},
		},
		Programs: aggregate.ProgramStats{Known: true, RunTime: 1500 * time.Nanosecond, Runs: 14},
	}
	e.Update("j1", snap)
	clk.Set(t2)

	id := kv(AttrJobID, "j1")
	dev, port := kv(AttrDevice, "Ethernet16"), kv(AttrPort, "Ethernet16")
	vlan, proto := attribute.Int(AttrVLAN, 100), kv(AttrIPProtocol, "TCP")
	in, out := kv(AttrDirection, "ingress"), kv(AttrDirection, "egress")
	flow1 := []attribute.KeyValue{id, kv(AttrSrc, "10.0.0.1"), kv(AttrDst, "10.0.0.2"), attribute.Int(AttrL4SrcPort, 1234),
		attribute.Int(AttrL4DstPort, 80), kv(AttrProtocol, "TCP"), attribute.Int(AttrVLAN, 100)}
	flow2 := []attribute.KeyValue{id, kv(AttrSrc, "2001:db8::1"), kv(AttrDst, "2001:db8::2"), attribute.Int(AttrL4SrcPort, 0),
		attribute.Int(AttrL4DstPort, 0), kv(AttrProtocol, "ICMPV6"), attribute.Int(AttrVLAN, 0)}
	errPt := func(typ string, v int64) metricdata.DataPoint[int64] {
		return dp(t1, t2, v, id, dev, port, kv(AttrErrorType, typ))
	}
	hist := func(bounds []float64, counts []uint64, n uint64, s int64) metricdata.Histogram[int64] {
		return metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality,
			DataPoints: []metricdata.HistogramDataPoint[int64]{{
				Attributes: attribute.NewSet(id, dev, port, vlan, proto), StartTime: t1, Time: t2,
				Bounds: bounds, BucketCounts: counts, Count: n, Sum: s}}}
	}
	want := metricdata.ResourceMetrics{
		Resource: resource.NewSchemaless(kv("service.name", "telegen-sonic"), kv("host.name", "sw1"),
			kv("sonic.platform", "x86_64-kvm_x86_64-r0"), kv("sonic.hwsku", "Force10-S6000")),
		ScopeMetrics: []metricdata.ScopeMetrics{
			healthScope(t0, t2, 1, 1, 0),
			{Scope: instrumentation.Scope{Name: ScopeName, Attributes: attribute.NewSet(id)}, Metrics: []metricdata.Metrics{
				sum("network.packets", "Packets that matched the job's filters, counted exactly in the kernel.", "{packet}",
					dp(t1, t2, 10, id, dev, port, vlan, proto, in), dp(t1, t2, 4, id, dev, port, vlan, proto, out)),
				sum("network.bytes", "Bytes of those packets (frame length on the wire, without FCS).", "By",
					dp(t1, t2, 1000, id, dev, port, vlan, proto, in), dp(t1, t2, 256, id, dev, port, vlan, proto, out)),
				sum("network.errors", "Problems seen in the job's packets, by error.type.", "{error}",
					errPt("l2_crc", 1), errPt("l3_checksum", 2), errPt("tcp_retrans", 3), errPt("malformed", 4)),
				sum("flow.packets", "Packets of the job's top-K flows by bytes (estimated from samples when sample_rate > 1).", "{packet}",
					dp(flowStart, t2, 8, flow1...), dp(t1, t2, 2, flow2...)),
				sum("flow.bytes", "Bytes of the job's top-K flows by bytes (estimated from samples when sample_rate > 1).", "By",
					dp(flowStart, t2, 900, flow1...), dp(t1, t2, 100, flow2...)),
				{Name: "network.latency", Description: "Latency of the job's sampled packets, in nanoseconds.", Unit: "ns",
					Data: hist([]float64{1000, 10000}, []uint64{1, 2, 3}, 6, 70000)},
				{Name: "tcp.rtt", Description: "TCP round-trip time of the job's sampled flows, in nanoseconds.", Unit: "ns",
					Data: hist([]float64{500}, []uint64{4, 0}, 4, 1200)},
				gauge("telegen.job.attached", "1 while the job's programs are attached, 0 in its final export.", "1",
					dp(t1, t2, 1, id, dev, port)),
				sum("telegen.bpf.run_time", "Time the job's eBPF programs ran, as the kernel accounts it (kernel.bpf_stats_enabled).", "ns",
					dp(t1, t2, 1500, id, dev, port)),
				sum("telegen.bpf.runs", "Runs of the job's eBPF programs (one per frame on its hooks), as the kernel accounts them.", "{run}",
					dp(t1, t2, 14, id, dev, port)),
			}},
		},
	}
	metricdatatest.AssertEqual(t, want, collect(t, e))
}

// TestDirectionsAndOptOut: only the watched directions get points, a job with otlp_export=false
// produces no series (but counts as running), and an ended job leaves after its final export.
func TestDirectionsAndOptOut(t *testing.T) {
	clk := &clock{t: t0}
	e := New(Options{Switch: Switch{HostName: "sw1"}, Now: clk.Now})
	clk.Set(t1)
	ing := testSpec("in")
	ing.Direction = jobspec.Ingress
	e.Start(ing, "Ethernet16")
	quiet := testSpec("quiet")
	quiet.OTLPExport = false
	e.Start(quiet, "Ethernet20")
	e.Update("in", aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: 7, Bytes: 700}})
	e.Update("quiet", aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: 1, Bytes: 1}})
	e.Update("unknown", aggregate.Snapshot{}) // ignored
	clk.Set(t2)

	rm := collect(t, e)
	if len(rm.ScopeMetrics) != 2 {
		t.Fatalf("%d scopes, want the agent's and job in's: %+v", len(rm.ScopeMetrics), rm.ScopeMetrics)
	}
	metricdatatest.AssertEqual(t, healthScope(t0, t2, 2, 2, 0), rm.ScopeMetrics[0])
	id, dev, port := kv(AttrJobID, "in"), kv(AttrDevice, "Ethernet16"), kv(AttrPort, "Ethernet16")
	got := rm.ScopeMetrics[1].Metrics
	metricdatatest.AssertEqual(t, sum("network.packets", "Packets that matched the job's filters, counted exactly in the kernel.", "{packet}",
		dp(t1, t2, 7, id, dev, port, kv(AttrDirection, "ingress"))), got[0])
	for _, m := range got {
		if m.Name == MetricFlowPackets || m.Name == MetricLatency || m.Name == MetricTCPRTT {
			t.Errorf("%s exported for a snapshot without it", m.Name)
		}
	}

	// otlp_export=false: End returns at once, final, and never calls done.
	v := e.End("quiet", aggregate.Snapshot{}, func(map[string]any) { t.Error("done called for a job not exported") })
	if v["exported"] != false || v["reason"] != "otlp_export is false" {
		t.Errorf("otel_export of an opted-out job = %v", v)
	}
	// Export off: likewise.
	v = e.End("in", aggregate.Snapshot{}, func(map[string]any) { t.Error("done called with export off") })
	if v["exported"] != false || v["endpoint"] != "" || v["reason"] != "otlp_endpoint is empty" {
		t.Errorf("otel_export with export off = %v", v)
	}
	if rm := collect(t, e); len(rm.ScopeMetrics) != 1 {
		t.Errorf("ended jobs still exported: %+v", rm.ScopeMetrics)
	}
	if v := e.End("never-started", aggregate.Snapshot{}, nil); v["exported"] != false {
		t.Errorf("otel_export of an unknown job = %v", v)
	}
}

// TestVerdicts: the ended counter keeps reason codes, not free text.
func TestVerdicts(t *testing.T) {
	clk := &clock{t: t0}
	e := New(Options{Now: clk.Now})
	e.Verdict("a", jobspec.Rejected, jobspec.ReasonConcurrencyLimit)
	e.Verdict("b", jobspec.Rejected, jobspec.ReasonConcurrencyLimit)
	e.Verdict("c", jobspec.Failed, "invalid: port: \"x\" is not a port")
	e.Verdict("d", jobspec.Done, "")
	e.Verdict("e", jobspec.Failed, "something unforeseen")
	clk.Set(t2)
	ended := func(status, reason string, n int64) metricdata.DataPoint[int64] {
		return dp(t0, t2, n, kv(AttrReason, reason), kv(AttrStatus, status))
	}
	want := healthScope(t0, t2, 0, 0, 0,
		ended("done", "", 1), ended("failed", "invalid", 1), ended("failed", "other", 1), ended("rejected", "concurrency_limit", 2))
	rm := collect(t, e)
	metricdatatest.AssertEqual(t, want, rm.ScopeMetrics[0])
}

// TestBadHistogramsSkipped: a histogram whose shape OTLP cannot carry is left out.
func TestBadHistogramsSkipped(t *testing.T) {
	for name, h := range map[string]aggregate.Histogram{
		"counts":     {Bounds: []uint64{1, 2}, Counts: []uint64{1, 2}},
		"decreasing": {Bounds: []uint64{5, 2}, Counts: []uint64{1, 2, 3}},
	} {
		if _, ok := histPoint(*attribute.EmptySet(), t0, t1, h); ok {
			t.Errorf("%s: malformed histogram converted", name)
		}
	}
	// Count is the buckets' sum even when the snapshot's Count disagrees.
	hp, ok := histPoint(*attribute.EmptySet(), t0, t1, aggregate.Histogram{Bounds: []uint64{1}, Counts: []uint64{2, 3}, Count: 99})
	if !ok || hp.Count != 5 {
		t.Errorf("count = %d, %v; want 5", hp.Count, ok)
	}
}

// TestFlowCacheBounded: the attribute cache holds only the latest top-K.
func TestFlowCacheBounded(t *testing.T) {
	e := New(Options{})
	e.Start(testSpec("j"), "Ethernet16")
	for round := range 5 {
		flows := make([]aggregate.Flow, 100)
		for i := range flows {
			flows[i] = aggregate.Flow{Key: aggregate.FlowKey{Src: netip.AddrFrom4([4]byte{10, 0, byte(round), byte(i)}),
				Dst: netip.MustParseAddr("10.1.0.1"), Proto: 17, SrcPort: uint16(i)}, Packets: 1, Bytes: 100}
		}
		e.Update("j", aggregate.Snapshot{TopFlows: flows})
		collect(t, e)
		j := e.jobs["j"]
		j.flows.mu.Lock()
		n := len(j.flows.sets)
		j.flows.mu.Unlock()
		if n != 100 {
			t.Fatalf("round %d: %d cached flow sets, want 100", round, n)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4318":                    "http://127.0.0.1:4318/v1/metrics",
		"[::1]:4318":                        "http://[::1]:4318/v1/metrics",
		"http://collector:4318":             "http://collector:4318/v1/metrics",
		"http://collector:4318/":            "http://collector:4318/v1/metrics",
		"https://collector.example/otlp/v1": "https://collector.example/otlp/v1",
	} {
		u, err := EndpointURL(in)
		if err != nil || u.String() != want {
			t.Errorf("EndpointURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "grpc://h:4317", "http://", "http://%zz"} {
		if u, err := EndpointURL(bad); err == nil {
			t.Errorf("EndpointURL(%q) = %v, want an error", bad, u)
		}
	}
}

func TestReasonCode(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "concurrency_limit": "concurrency_limit", "invalid: vlan: must be 1-4094": "invalid",
		"mirror_failed: no such session": "mirror_failed", "attach_failed: EPERM": "attach_failed",
		"daemon_shutdown": "daemon_shutdown", "who knows": "other",
	} {
		if got := reasonCode(in); got != want {
			t.Errorf("reasonCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkCollect is our share of an export cycle: the SDK reader's collection through the
// producer, for two jobs with 1 024 flows each, without encoding or sending.
func BenchmarkCollect(b *testing.B) {
	e := New(Options{})
	for j := range 2 {
		id := string(rune('a' + j))
		e.Start(testSpec(id), "Ethernet16")
		flows := make([]aggregate.Flow, 1024)
		for i := range flows {
			flows[i] = aggregate.Flow{Key: aggregate.FlowKey{Src: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}),
				Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: uint16(i), DstPort: 443, Proto: 6}, Packets: 10, Bytes: 1000}
		}
		e.Update(id, aggregate.Snapshot{TopFlows: flows})
	}
	r := sdkmetric.NewManualReader(sdkmetric.WithProducer(producer{e}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	var rm metricdata.ResourceMetrics
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Collect(context.Background(), &rm); err != nil {
			b.Fatal(err)
		}
	}
}
