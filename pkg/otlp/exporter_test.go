package otlp

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// sink is an OTLP/HTTP receiver that decodes every request, answering with status (200 when 0).
type sink struct {
	*httptest.Server
	status atomic.Int32
	hang   chan struct{} // when set, requests wait until it is closed

	mu   sync.Mutex
	reqs []*colmetricpb.ExportMetricsServiceRequest
}

func newSink(t *testing.T, hang bool) *sink {
	s := &sink{}
	if hang {
		s.hang = make(chan struct{})
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hang != nil {
			select {
			case <-s.hang:
			case <-r.Context().Done():
			}
			return
		}
		if r.URL.Path != DefaultURLPath || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, "want gzip on "+DefaultURLPath, http.StatusBadRequest)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req colmetricpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if code := s.status.Load(); code != 0 {
			http.Error(w, "collector says no", int(code))
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, &req)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(func() {
		if s.hang != nil {
			select {
			case <-s.hang:
			default:
				close(s.hang)
			}
		}
		s.Close()
	})
	return s
}

// points returns the int values of metric name whose attribute key equals val, over every
// request received, in order.
func (s *sink) points(name, key, val string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for _, req := range s.reqs {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != name {
						continue
					}
					var pts []*metricpb.NumberDataPoint
					if m.GetSum() != nil {
						pts = m.GetSum().DataPoints
					} else if m.GetGauge() != nil {
						pts = m.GetGauge().DataPoints
					}
					for _, p := range pts {
						for _, a := range p.Attributes {
							if a.Key == key && a.Value.GetStringValue() == val {
								out = append(out, p.GetAsInt())
							}
						}
					}
				}
			}
		}
	}
	return out
}

func (s *sink) resourceAttr(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, req := range s.reqs {
		for _, rm := range req.ResourceMetrics {
			for _, a := range rm.Resource.Attributes {
				if a.Key == key {
					return a.Value.GetStringValue()
				}
			}
		}
	}
	return ""
}

func globals(endpoint string, interval int) jobspec.Globals {
	g := jobspec.DefaultGlobals()
	g.OTLPEndpoint, g.ExportIntervalSec = endpoint, interval
	return g
}

func closeExporter(t *testing.T, e *Exporter) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
}

// waitDone returns what done was called with, failing after within.
func waitDone(t *testing.T, ch <-chan map[string]any, within time.Duration) map[string]any {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("done not called within %v", within)
		return nil
	}
}

// TestExportToSink: points reach an OTLP/HTTP receiver with the job id; End's final export
// carries the final figures and releases the job's series; done reports the success.
func TestExportToSink(t *testing.T) {
	s := newSink(t, false)
	e := New(Options{Switch: Switch{HostName: "sw1", HWSKU: "Force10-S6000"}})
	closeExporter(t, e)
	e.Configure(globals(s.URL, 3600)) // only explicit flushes
	e.Start(testSpec("j1"), "Ethernet16")
	e.Update("j1", aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: 5, Bytes: 500}})
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.points(MetricPackets, AttrJobID, "j1"); len(got) != 2 || got[0] != 5 || got[1] != 0 {
		t.Errorf("network.packets points = %v, want [5 0] (ingress, egress)", got)
	}
	if h := s.resourceAttr(ResHostName); h != "sw1" || s.resourceAttr(ResServiceName) != ServiceName || s.resourceAttr(ResHWSKU) != "Force10-S6000" {
		t.Errorf("resource host.name %q service.name %q", h, s.resourceAttr(ResServiceName))
	}

	done := make(chan map[string]any, 1)
	begin := time.Now()
	v := e.End("j1", aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: 9, Bytes: 900}}, func(v map[string]any) { done <- v })
	if d := time.Since(begin); d > 500*time.Millisecond { // an export held up would take seconds
		t.Errorf("End took %v", d)
	}
	if v["exported"] != true || v["endpoint"] != s.URL+DefaultURLPath {
		t.Errorf("otel_export at End = %v", v)
	}
	v = waitDone(t, done, 5*time.Second)
	if v["exported"] != true || v["failed_exports"] != 0 || v["last_error"] != "" || v["last_success_at"] == "" {
		t.Errorf("otel_export after the final export = %v", v)
	}
	if got := s.points(MetricPackets, AttrJobID, "j1"); len(got) != 4 || got[2] != 9 {
		t.Errorf("network.packets points = %v, want the final 9 last", got)
	}
	if got := s.points(MetricJobAttached, AttrJobID, "j1"); len(got) != 2 || got[0] != 1 || got[1] != 0 {
		t.Errorf("telegen.job.attached = %v, want [1 0]", got)
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.points(MetricPackets, AttrJobID, "j1"); len(got) != 4 {
		t.Errorf("job exported after its final export: %v", got)
	}
}

// TestExportFailures: refused and failed exports are counted per job and in the agent's health,
// and export resumes when the collector answers again.
func TestExportFailures(t *testing.T) {
	s := newSink(t, false)
	e := New(Options{})
	closeExporter(t, e)
	e.Configure(globals(s.URL, 3600))
	e.Start(testSpec("j1"), "Ethernet16")
	s.status.Store(http.StatusServiceUnavailable)
	for range 2 {
		if err := e.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan map[string]any, 1)
	v := e.End("j1", aggregate.Snapshot{}, func(v map[string]any) { done <- v })
	if v["exported"] != false || v["failed_exports"] != 2 || !strings.Contains(v["last_error"].(string), "503") {
		t.Errorf("otel_export at End = %v", v)
	}
	v = waitDone(t, done, 5*time.Second)
	if v["exported"] != false || v["failed_exports"] != 3 || v["last_success_at"] != "" {
		t.Errorf("otel_export after the final export = %v", v)
	}

	s.status.Store(0)
	e.Start(testSpec("j2"), "Ethernet16")
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.points(MetricPackets, AttrJobID, "j2"); len(got) != 2 {
		t.Errorf("export did not resume: %v", got)
	}
	s.mu.Lock()
	var failures int64 = -1
	for _, sm := range s.reqs[0].ResourceMetrics[0].ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == MetricExportFailures {
				failures = m.GetSum().DataPoints[0].GetAsInt()
			}
		}
	}
	s.mu.Unlock()
	if failures != 3 {
		t.Errorf("telegen.otlp.export.failures = %d, want 3", failures)
	}
}

// TestCollectorDown: nothing listening; failures are counted, nothing blocks.
func TestCollectorDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := New(Options{})
	closeExporter(t, e)
	e.Configure(globals(addr, 1))
	e.Start(testSpec("j1"), "Ethernet16")
	time.Sleep(2500 * time.Millisecond) // two periodic exports
	done := make(chan map[string]any, 1)
	e.End("j1", aggregate.Snapshot{}, func(v map[string]any) { done <- v })
	v := waitDone(t, done, 5*time.Second)
	if n := v["failed_exports"].(int); n < 3 || v["exported"] != false || !strings.Contains(v["last_error"].(string), "connection refused") {
		t.Errorf("otel_export = %v, want >= 3 failures (2 periodic, 1 final), connection refused", v)
	}
	if v["endpoint"] != "http://"+addr+DefaultURLPath {
		t.Errorf("endpoint = %v", v["endpoint"])
	}
}

// TestHangingCollector: a collector that accepts and never answers holds nothing up: Start,
// Update and End return at once, the final export gives up after its timeout, and done reports
// the failure.
func TestHangingCollector(t *testing.T) {
	t.Parallel()
	s := newSink(t, true)
	e := New(Options{})
	closeExporter(t, e)
	e.Configure(globals(s.URL, 1))
	e.Start(testSpec("j1"), "Ethernet16")
	time.Sleep(1200 * time.Millisecond) // the reader is now stuck in an export
	begin := time.Now()
	for i := range 100 {
		e.Update("j1", aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: uint64(i)}})
	}
	done := make(chan map[string]any, 1)
	e.End("j1", aggregate.Snapshot{}, func(v map[string]any) { done <- v })
	if d := time.Since(begin); d > 500*time.Millisecond { // an export held up would take seconds
		t.Errorf("Update and End took %v with a hanging collector", d)
	}
	v := waitDone(t, done, 3*exportTimeout(time.Second)+time.Second)
	if v["failed_exports"].(int) < 1 || v["last_error"] == "" || v["exported"] != false {
		t.Errorf("otel_export = %v, want a failure", v)
	}
}

// TestConfigure: no pipeline (and no goroutine) while export is off; repeated settings leave the
// pipeline alone; a change rebuilds it; Close leaves nothing running.
func TestConfigure(t *testing.T) {
	base := runtime.NumGoroutine()
	e := New(Options{})
	e.Configure(jobspec.DefaultGlobals())
	e.Start(testSpec("j1"), "Ethernet16")
	// Not more (goroutines an earlier test left may still be winding down: fewer is fine).
	if e.pipe != nil || runtime.NumGoroutine() > base {
		t.Fatalf("export off, yet pipeline %v and %d goroutines (was %d)", e.pipe, runtime.NumGoroutine(), base)
	}
	if err := e.Flush(context.Background()); err == nil {
		t.Error("Flush with export off succeeded")
	}

	s := newSink(t, false)
	e.Configure(globals(s.URL, 3600))
	p := e.pipe
	e.Configure(globals(s.URL, 3600))
	if e.pipe != p || p == nil {
		t.Fatal("unchanged settings rebuilt the pipeline")
	}
	e.Configure(globals(s.URL, 60))
	if e.pipe == p || e.pipe == nil {
		t.Fatal("changed interval kept the pipeline")
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Configure(globals("", 60))
	if e.pipe != nil {
		t.Fatal("empty endpoint kept a pipeline")
	}
	e.Configure(globals("http://\x00bad", 60)) // validated by jobspec; still refused here
	if e.pipe != nil {
		t.Fatal("bad endpoint built a pipeline")
	}
	e.Configure(globals(s.URL, 60))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.Configure(globals(s.URL, 1))
	if e.pipe != nil {
		t.Fatal("Configure after Close built a pipeline")
	}
	s.CloseClientConnections()
	s.Close()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, was %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConcurrentUse runs every method at once under the race detector.
func TestConcurrentUse(t *testing.T) {
	s := newSink(t, false)
	e := New(Options{})
	closeExporter(t, e)
	e.Configure(globals(s.URL, 1))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				id := string(rune('a'+w)) + "job"
				e.Start(testSpec(id), "Ethernet16")
				e.Update(id, aggregate.Snapshot{Ingress: aggregate.DirectionCounts{Packets: uint64(i)},
					TopFlows: []aggregate.Flow{{Packets: 1}}})
				if i%10 == 0 {
					_ = e.Flush(context.Background())
				}
				e.End(id, aggregate.Snapshot{}, nil)
				e.Verdict(id, jobspec.Done, "")
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			e.Configure(globals(s.URL, 1+i%2))
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
}

// TestFailedExportsHoldNoMemory: with two jobs of 256 flows each and the collector down, the
// live heap after 5 failed exports and after 25 is the same: nothing is queued or retained per
// failed export (each builds ~1 100 points, which a queue would keep).
func TestFailedExportsHoldNoMemory(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := New(Options{})
	closeExporter(t, e)
	e.Configure(globals(addr, 3600))
	for j := range 2 {
		id := string(rune('a' + j))
		e.Start(testSpec(id), "Ethernet16")
		flows := make([]aggregate.Flow, 256)
		for i := range flows {
			flows[i] = aggregate.Flow{Key: aggregate.FlowKey{Src: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}),
				Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: uint16(i), DstPort: 443, Proto: 6}, Packets: 10, Bytes: 1000}
		}
		e.Update(id, aggregate.Snapshot{TopFlows: flows})
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	flushes := func(n int) {
		for range n {
			if err := e.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One export of these two jobs is some 400 KiB of protobuf: anything kept per failed export
	// would grow the heap by megabytes over 40 of them. The bound leaves room for the noise of
	// the race detector and of packages tested side by side.
	flushes(5)
	before := heap()
	flushes(40)
	after := heap()
	t.Logf("live heap after 5 failed exports %d KiB, after 45 %d KiB", before/1024, after/1024)
	if after > before+2048*1024 {
		t.Errorf("live heap grew by %d KiB over 40 failed exports", (after-before)/1024)
	}
	e.mu.Lock()
	failed := e.health.exportFailures
	e.mu.Unlock()
	if failed != 45 {
		t.Errorf("%d failures counted, want 45 (one request per export)", failed)
	}
}
