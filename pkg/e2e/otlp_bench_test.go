package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/otlp"
)

// BenchmarkExportCycle measures one OTLP export cycle as telegend runs it: two jobs with 1 024
// top-K flows each (plus totals, errors, two latency histograms and the agent's health), collected
// by the SDK's reader through our producer, encoded, gzip-compressed and posted to an in-process
// OTLP/HTTP sink that discards the body. Reported: wall time, process CPU time, allocations and
// bytes allocated, requests and compressed bytes per cycle. `make bench-otlp` runs it.
func BenchmarkExportCycle(b *testing.B) {
	const jobs, flows = 2, 1024
	var requests, wire atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		wire.Add(n)
	}))
	defer sink.Close()

	e := otlp.New(otlp.Options{Switch: otlp.Switch{HostName: "bench", Platform: "x86_64-kvm_x86_64-r0", HWSKU: "Force10-S6000"}})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	}()
	g := jobspec.DefaultGlobals()
	g.OTLPEndpoint, g.ExportIntervalSec = sink.URL, 3600 // only the benchmark's cycles export
	e.Configure(g)
	for j := range jobs {
		id := fmt.Sprintf("bench-%d", j)
		e.Start(jobspec.Spec{ID: id, Port: fmt.Sprintf("Ethernet%d", 4*j), Direction: jobspec.Both,
			SampleRate: 1, OTLPExport: true}, fmt.Sprintf("Ethernet%d", 4*j))
		e.Update(id, fabricatedSnapshot(j, flows))
	}
	ctx := context.Background()
	if err := e.Flush(ctx); err != nil { // warm the caches and the connection
		b.Fatal(err)
	}
	requests.Store(0)
	wire.Store(0)
	cpu0 := cpuTime(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(cpuTime(b)-cpu0)/n/1e6, "cpu-ms/op")
	b.ReportMetric(float64(requests.Load())/n, "requests/op")
	b.ReportMetric(float64(wire.Load())/n/1024, "gzip-KiB/op")
	b.Logf("export cycle: %d jobs x %d flows, %.1f requests and %.1f KiB gzip per cycle",
		jobs, flows, float64(requests.Load())/n, float64(wire.Load())/n/1024)
	// Every cycle must have been a successful export, or the figures measure failures.
	if v := e.End("bench-0", aggregate.Snapshot{}, nil); v["failed_exports"] != 0 {
		b.Fatalf("exports failed during the benchmark: %v", v)
	}
}

// fabricatedSnapshot is a job's snapshot with k flows, as the data plane will fill it.
func fabricatedSnapshot(job, k int) aggregate.Snapshot {
	now := time.Now()
	s := aggregate.Snapshot{
		Ingress:    aggregate.DirectionCounts{Packets: 123456789, Bytes: 98765432100},
		Egress:     aggregate.DirectionCounts{Packets: 23456789, Bytes: 8765432100},
		SampleRate: 100,
		Sampled:    1234567,
		Errors:     aggregate.Errors{L3Checksum: 3, TCPRetrans: 1200, Malformed: 7},
		FlowsSeen:  uint64(4 * k),
		Latency:    map[string]aggregate.Histogram{},
	}
	for i := range k {
		s.TopFlows = append(s.TopFlows, aggregate.Flow{
			Key: aggregate.FlowKey{
				Src: netip.AddrFrom4([4]byte{10, byte(job), byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("192.0.2.10"),
				SrcPort: uint16(1024 + i), DstPort: 443, Proto: 6, VLAN: uint16(100 + i%4),
			},
			Packets: uint64(1000 * (k - i)), Bytes: uint64(1400 * 1000 * (k - i)),
			FirstSeen: now.Add(-time.Minute), LastSeen: now,
		})
	}
	bounds := make([]uint64, 16)
	for i := range bounds {
		bounds[i] = 1000 << i // 1 µs … 32 ms
	}
	counts := make([]uint64, len(bounds)+1)
	for i := range counts {
		counts[i] = uint64(10 * i)
	}
	for _, name := range []string{"network.latency", "tcp.rtt"} {
		s.Latency[name] = aggregate.Histogram{Bounds: bounds, Counts: counts, Sum: 123456789, Count: 1360}
	}
	return s
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
