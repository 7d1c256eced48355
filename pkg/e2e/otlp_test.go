package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// The collector binary, built (or found in the cache) once per test binary by scripts/otelcol.sh.
var (
	otelcolOnce sync.Once
	otelcolBin  string
	otelcolErr  error
)

// collectorBinary returns the real OpenTelemetry Collector, skipping (failing under CI) when it
// cannot be built.
func collectorBinary(t testing.TB) (bin, config string) {
	t.Helper()
	root, err := repoRoot()
	must(t, err)
	otelcolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "otelcol.sh"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			otelcolErr = fmt.Errorf("scripts/otelcol.sh: %v\n%s", err, stderr.String())
			return
		}
		otelcolBin = strings.TrimSpace(string(out))
	})
	if otelcolErr != nil {
		testenv.Skip(t, "no OpenTelemetry Collector: %v", otelcolErr)
	}
	return otelcolBin, filepath.Join(root, "scripts", "otelcol", "config.yaml")
}

// otelCollector is a real collector in the switch's network namespace, receiving OTLP/HTTP on
// a loopback port there and printing every data point (debug exporter, detailed) to a file.
type otelCollector struct {
	t           testing.TB
	bin, config string
	ns, addr    string
	outs        []string // output file of each run
	cmd         *exec.Cmd
	done        chan error
}

// newCollector prepares a collector on a free loopback port of the switch namespace; start runs it.
func (s *vswitch) newCollector() *otelCollector {
	s.t.Helper()
	bin, config := collectorBinary(s.t)
	var addr string
	must(s.t, inNetNS(s.swNS, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = l.Addr().String()
		return l.Close()
	}))
	c := &otelCollector{t: s.t, bin: bin, config: config, ns: s.swNS, addr: addr}
	s.t.Cleanup(c.stop)
	return c
}

func (c *otelCollector) endpoint() string { return "http://" + c.addr }

// start runs the collector and waits until it listens.
func (c *otelCollector) start() {
	c.t.Helper()
	out := filepath.Join(c.t.TempDir(), fmt.Sprintf("otelcol-%d.log", len(c.outs)))
	f, err := os.Create(out)
	must(c.t, err)
	defer f.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+c.ns, "--", c.bin, "--config", "file:"+c.config)
	cmd.Env = append(os.Environ(), "OTELCOL_ENDPOINT="+c.addr)
	cmd.Stdout, cmd.Stderr = f, f
	must(c.t, cmd.Start())
	c.cmd, c.done, c.outs = cmd, make(chan error, 1), append(c.outs, out)
	go func() { c.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(out)
		if strings.Contains(string(data), "Everything is ready") {
			return
		}
		select {
		case err := <-c.done:
			c.done <- err
			c.t.Fatalf("collector exited at start: %v\n%s", err, data)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("collector not ready within 30 s:\n%s", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the collector (SIGTERM, then SIGKILL); a no-op when it is not running.
func (c *otelCollector) stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// points parses everything the collector printed, over all its runs.
func (c *otelCollector) points() []otlpPoint {
	c.t.Helper()
	var all []otlpPoint
	for _, out := range c.outs {
		f, err := os.Open(out)
		must(c.t, err)
		pts, err := parseDebugOutput(f)
		f.Close()
		must(c.t, err)
		all = append(all, pts...)
	}
	return all
}

// otlpPoint is one data point as the collector's debug exporter printed it.
type otlpPoint struct {
	Resource, Scope, Attrs map[string]string
	Metric, Type           string // Type: Sum, Gauge, Histogram
	Monotonic              bool
	Value                  string // number points
	Count                  uint64 // histogram points
	Sum                    float64
	Bounds                 []float64
	Buckets                []uint64
}

// parseDebugOutput reads the debug exporter's detailed text (ResourceMetrics #…, Metric #…,
// NumberDataPoints #…, "-> key: Str(value)" attribute lines) into points.
func parseDebugOutput(r io.Reader) ([]otlpPoint, error) {
	var (
		out         []otlpPoint
		res, scope  map[string]string
		metric, typ string
		monotonic   bool
		cur         *otlpPoint
		attrsOf     = ""
		flush       = func() {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "ResourceMetrics #"); i >= 0 {
			line = line[i:] // the first line of a dump follows the log line's time and level
		}
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "ResourceMetrics #"):
			flush()
			res, scope, metric = map[string]string{}, map[string]string{}, ""
		case trim == "Resource attributes:":
			attrsOf = "resource"
		case strings.HasPrefix(trim, "ScopeMetrics #"):
			flush()
			scope, metric = map[string]string{}, ""
		case trim == "InstrumentationScope attributes:":
			attrsOf = "scope"
		case strings.HasPrefix(trim, "Metric #"):
			flush()
			metric, typ, monotonic = "", "", false
		case trim == "Descriptor:":
			attrsOf = "descriptor"
		case strings.HasPrefix(trim, "NumberDataPoints #"), strings.HasPrefix(trim, "HistogramDataPoints #"):
			flush()
			cur = &otlpPoint{Resource: res, Scope: scope, Attrs: map[string]string{}, Metric: metric, Type: typ, Monotonic: monotonic}
			attrsOf = ""
		case trim == "Data point attributes:":
			attrsOf = "point"
		case strings.HasPrefix(trim, "-> "):
			k, v, ok := strings.Cut(strings.TrimPrefix(trim, "-> "), ": ")
			if !ok {
				continue
			}
			if open := strings.IndexByte(v, '('); open > 0 && strings.HasSuffix(v, ")") {
				v = v[open+1 : len(v)-1] // Str(x), Int(5), …
			}
			switch attrsOf {
			case "resource":
				res[k] = v
			case "scope":
				scope[k] = v
			case "point":
				if cur != nil {
					cur.Attrs[k] = v
				}
			case "descriptor":
				switch k {
				case "Name":
					metric = v
				case "DataType":
					typ = v
				case "IsMonotonic":
					monotonic = v == "true"
				}
			}
		case cur != nil && strings.HasPrefix(trim, "Value: "):
			cur.Value = strings.TrimPrefix(trim, "Value: ")
		case cur != nil && strings.HasPrefix(trim, "Count: "):
			cur.Count, _ = strconv.ParseUint(strings.TrimPrefix(trim, "Count: "), 10, 64)
		case cur != nil && strings.HasPrefix(trim, "Sum: "):
			cur.Sum, _ = strconv.ParseFloat(strings.TrimPrefix(trim, "Sum: "), 64)
		case cur != nil && strings.HasPrefix(trim, "ExplicitBounds #"):
			_, v, _ := strings.Cut(trim, ": ")
			b, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("bound %q: %w", trim, err)
			}
			cur.Bounds = append(cur.Bounds, b)
		case cur != nil && strings.HasPrefix(trim, "Buckets #"):
			_, v, _ := strings.Cut(trim, "Count: ")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bucket %q: %w", trim, err)
			}
			cur.Buckets = append(cur.Buckets, n)
		case strings.HasPrefix(line, "\t{") || strings.HasPrefix(line, "20"):
			flush() // the end of a dump, or another log line
			attrsOf = ""
		}
	}
	flush()
	return out, sc.Err()
}

// select returns the points of metric whose attributes include every key=value of match.
func selectPoints(pts []otlpPoint, metric string, match ...string) []otlpPoint {
	var out []otlpPoint
next:
	for _, p := range pts {
		if p.Metric != metric {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if p.Attrs[match[i]] != match[i+1] {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// waitPoints polls the collector's output until cond holds for the points.
func (c *otelCollector) waitPoints(within time.Duration, what string, cond func([]otlpPoint) bool) []otlpPoint {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		pts := c.points()
		if cond(pts) {
			return pts
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("collector: %s not seen within %v (%d points received)", what, within, len(pts))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastValue(pts []otlpPoint) string {
	if len(pts) == 0 {
		return ""
	}
	return pts[len(pts)-1].Value
}

// otelExport reads the result's otel_export.
func (s *vswitch) otelExport(id string) map[string]any {
	s.t.Helper()
	raw := s.result(id)["otel_export"]
	if raw == "" {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		s.t.Fatalf("otel_export of %s: %v: %s", id, err, raw)
	}
	return v
}

func (s *vswitch) setOTLP(endpoint string) {
	s.t.Helper()
	must(s.t, s.config.HSet(context.Background(), "TELEGEN|global",
		"otlp_endpoint", endpoint, "export_interval_sec", "1").Err())
	must(s.t, s.config.HSet(context.Background(), "DEVICE_METADATA|localhost",
		"hostname", "sw-e2e", "platform", "x86_64-kvm_x86_64-r0", "hwsku", "Force10-S6000").Err())
}

// TestOTLPExport is the first promise: with a real collector on loopback, a sample_rate=1
// job over N replayed frames yields a network.packets point with the job id and port whose value
// is N, and network.bytes equal to the bytes sent; the resource names the switch.
func TestOTLPExport(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	col := s.newCollector()
	col.start()
	s.setOTLP(col.endpoint())
	pcap := genPcap(t, "all", 300)
	want := tsharkTruth(t, pcap)
	s.startDaemon()

	const id = "otlp-e2e-1"
	s.putJob(id, "port", "Ethernet16", "span_method", "direct", "duration_sec", "3",
		"sample_rate", "1", "otlp_export", "true", "result_detail", "flows")
	rec := s.waitStatus(id, "running", 2*time.Second)
	s.replay("Ethernet16", pcap)
	s.waitStatus(id, "done", time.Until(parseTime(t, rec["expires_at"]))+2*time.Second)

	match := []string{"telegen.job.id", id, "port", "Ethernet16", "device", "Ethernet16", "direction", "ingress"}
	n, nbytes := strconv.Itoa(want.Frames), strconv.FormatUint(want.Bytes, 10)
	// The job's final export says attached 0; its totals are final by then.
	pts := col.waitPoints(10*time.Second, "the final export", func(pts []otlpPoint) bool {
		return lastValue(selectPoints(pts, "telegen.job.attached", "telegen.job.id", id)) == "0"
	})
	if got, gotBytes := lastValue(selectPoints(pts, "network.packets", match...)), lastValue(selectPoints(pts, "network.bytes", match...)); got != n || gotBytes != nbytes {
		t.Errorf("final network.packets %q network.bytes %q, want %s and %s (tshark)", got, gotBytes, n, nbytes)
	}
	p := selectPoints(pts, "network.packets", match...)
	last := p[len(p)-1]
	if last.Type != "Sum" || !last.Monotonic {
		t.Errorf("network.packets is %s (monotonic %v), want a monotonic Sum", last.Type, last.Monotonic)
	}
	if last.Resource["host.name"] != "sw-e2e" || last.Resource["service.name"] != "telegen-sonic" ||
		last.Resource["sonic.hwsku"] != "Force10-S6000" || last.Resource["sonic.platform"] != "x86_64-kvm_x86_64-r0" {
		t.Errorf("resource = %v", last.Resource)
	}
	if last.Scope["telegen.job.id"] != id {
		t.Errorf("scope attributes = %v", last.Scope)
	}
	if len(p) < 2 {
		t.Errorf("only %d network.packets points for a 3 s job exported every second", len(p))
	}
	if eg := selectPoints(pts, "network.packets", "telegen.job.id", id, "direction", "egress"); len(eg) != 0 {
		t.Errorf("egress points for an ingress job: %v", eg)
	}
	att := selectPoints(pts, "telegen.job.attached", "telegen.job.id", id)
	if len(att) == 0 || att[0].Value != "1" || lastValue(att) != "0" {
		t.Errorf("telegen.job.attached = %v, want 1 while running and 0 in the final export", att)
	}
	for _, q := range pts {
		if q.Attrs["telegen.job.id"] == "" && q.Scope["telegen.job.id"] != "" {
			t.Errorf("%s point without the job id: %v", q.Metric, q.Attrs)
		}
	}

	res := s.result(id)
	checkFlows(t, pts, id, res)
	checkLatency(t, pts, id, res)

	// The otel_export of the result, as End left it or as the final export patched it.
	deadline := time.Now().Add(5 * time.Second)
	var oe map[string]any
	for {
		oe = s.otelExport(id)
		if oe["exported"] == true && oe["last_success_at"] != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if oe["exported"] != true || oe["endpoint"] != col.endpoint()+"/v1/metrics" || oe["failed_exports"] != float64(0) {
		t.Errorf("otel_export = %v, want exported to %s/v1/metrics without failures", oe, col.endpoint())
	}
	s.daemon.stop(t)
}

// checkFlows compares flow.packets/flow.bytes with the result's top_flows, when the data plane
// measured flows at all.
func checkFlows(t *testing.T, pts []otlpPoint, id string, res map[string]string) {
	t.Helper()
	var top []struct {
		FiveTuple string `json:"5tuple"`
		Pkts      uint64 `json:"pkts"`
		Bytes     uint64 `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(res["top_flows"]), &top); err != nil || len(top) == 0 {
		t.Logf("no top_flows in the result (%v); flow.* metrics not checked", err)
		return
	}
	// The last export of each flow series holds its final figures.
	final := map[string][2]string{}
	for _, p := range selectPoints(pts, "flow.packets", "telegen.job.id", id) {
		v := final[fiveTuple(t, p)]
		v[0] = p.Value
		final[fiveTuple(t, p)] = v
	}
	for _, p := range selectPoints(pts, "flow.bytes", "telegen.job.id", id) {
		v := final[fiveTuple(t, p)]
		v[1] = p.Value
		final[fiveTuple(t, p)] = v
	}
	for _, f := range top {
		got, ok := final[f.FiveTuple]
		if !ok || got[0] != strconv.FormatUint(f.Pkts, 10) || got[1] != strconv.FormatUint(f.Bytes, 10) {
			t.Errorf("flow %s: exported packets/bytes %v, result says %d/%d", f.FiveTuple, got, f.Pkts, f.Bytes)
		}
	}
}

func fiveTuple(t *testing.T, p otlpPoint) string {
	port := func(k string) uint16 {
		n, err := strconv.ParseUint(p.Attrs[k], 10, 16)
		if err != nil {
			t.Fatalf("%s of %v: %v", k, p.Attrs, err)
		}
		return uint16(n)
	}
	addr := func(k string) netip.Addr {
		a, err := netip.ParseAddr(p.Attrs[k])
		if err != nil {
			t.Fatalf("%s of %v: %v", k, p.Attrs, err)
		}
		return a
	}
	return fmt.Sprintf("%s->%s/%s", netip.AddrPortFrom(addr("src"), port("l4_sport")),
		netip.AddrPortFrom(addr("dst"), port("l4_dport")), p.Attrs["protocol"])
}

// checkLatency: when the job measured latency, network.latency arrives as a histogram with the
// result's bounds and counts.
func checkLatency(t *testing.T, pts []otlpPoint, id string, res map[string]string) {
	t.Helper()
	raw := res["latency_histogram_ns"]
	if raw == "" {
		t.Log("no latency_histogram_ns in the result (the data plane does not measure latency yet); network.latency not checked")
		if h := selectPoints(pts, "network.latency", "telegen.job.id", id); len(h) != 0 {
			t.Errorf("network.latency exported without a histogram in the result: %v", h)
		}
		return
	}
	var want struct {
		Bounds []float64 `json:"bounds"`
		Counts []uint64  `json:"counts"`
	}
	must(t, json.Unmarshal([]byte(raw), &want))
	h := selectPoints(pts, "network.latency", "telegen.job.id", id)
	if len(h) == 0 {
		t.Fatal("network.latency never exported")
	}
	last := h[len(h)-1]
	if last.Type != "Histogram" || !slices.Equal(last.Bounds, want.Bounds) || !slices.Equal(last.Buckets, want.Counts) {
		t.Errorf("network.latency = %s bounds %v buckets %v; result has bounds %v counts %v",
			last.Type, last.Bounds, last.Buckets, want.Bounds, want.Counts)
	}
}

// TestOTLPCollectorDown is the back-pressure promise: with the collector stopped for the whole
// job, the job ends on time, telegend's memory stays bounded and the result counts the failed
// exports with the last error; once the collector is back, export resumes.
func TestOTLPCollectorDown(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	col := s.newCollector() // port chosen, nothing listening yet
	s.setOTLP(col.endpoint())
	pcap := genPcap(t, "flows", 2000)
	d := s.startDaemon()
	time.Sleep(time.Second)
	rssBefore := rssKiB(t, d.cmd.Process.Pid)

	const id = "otlp-down"
	s.putJob(id, "port", "Ethernet16", "span_method", "direct", "duration_sec", "5", "sample_rate", "1")
	rec := s.waitStatus(id, "running", 2*time.Second)
	for range 3 {
		s.replay("Ethernet16", pcap)
	}
	expires := parseTime(t, rec["expires_at"])
	// Resident memory every half second while exports fail. It rises while the export path
	// warms up (heap, and the race detector's shadow memory in race builds) and then stays flat;
	// it must never grow with the number of failed exports. (The per-export bound is proven on
	// the heap in pkg/otlp TestFailedExportsHoldNoMemory; this is the whole daemon's view.)
	var rss []int
	for time.Now().Before(expires) {
		rss = append(rss, rssKiB(t, d.cmd.Process.Pid))
		time.Sleep(500 * time.Millisecond)
	}
	rec = s.waitStatus(id, "done", time.Until(expires)+time.Second)
	if ran := parseTime(t, rec["finished_at"]).Sub(parseTime(t, rec["started_at"])); ran < 4500*time.Millisecond || ran > 6*time.Second {
		t.Errorf("job ran %v with the collector down, want 5 s", ran)
	}
	rssAfter := rssKiB(t, d.cmd.Process.Pid)
	t.Logf("telegend VmRSS (KiB): %d before the job, %v during it (every 0.5 s), %d after", rssBefore, rss, rssAfter)
	limit := 8 * 1024 // KiB; measured: about 1 MiB without the race detector
	if os.Getenv("TELEGEN_E2E_RACE") != "0" {
		limit = 16 * 1024 // measured: 7 MiB, flat after ~7 s, the same with the collector up
	}
	if peak := max(slices.Max(rss), rssAfter); len(rss) > 0 && peak > rss[0]+limit {
		t.Errorf("VmRSS grew from %d to %d KiB while exports failed (limit %d KiB)", rss[0], peak, limit)
	}

	deadline := time.Now().Add(10 * time.Second)
	var oe map[string]any
	for {
		oe = s.otelExport(id)
		if n, _ := oe["failed_exports"].(float64); n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, _ := oe["failed_exports"].(float64); n < 4 || oe["exported"] != false ||
		!strings.Contains(fmt.Sprint(oe["last_error"]), "connection refused") {
		t.Errorf("otel_export = %v, want exported false, >= 4 failed exports (one a second), last_error connection refused", oe)
	}

	// Collector back: the next job is exported, and the agent reports the failures it counted.
	col.start()
	const id2 = "otlp-back"
	s.putJob(id2, "port", "Ethernet16", "span_method", "direct", "duration_sec", "2", "sample_rate", "1")
	rec = s.waitStatus(id2, "running", 2*time.Second)
	s.replay("Ethernet16", pcap)
	s.waitStatus(id2, "done", time.Until(parseTime(t, rec["expires_at"]))+time.Second)
	want := strconv.Itoa(tsharkTruth(t, pcap).Frames)
	pts := col.waitPoints(10*time.Second, "network.packets of "+id2, func(pts []otlpPoint) bool {
		return lastValue(selectPoints(pts, "network.packets", "telegen.job.id", id2)) == want
	})
	fails := selectPoints(pts, "telegen.otlp.export.failures")
	if n, _ := strconv.Atoi(lastValue(fails)); n < 4 {
		t.Errorf("telegen.otlp.export.failures = %v, want >= 4", lastValue(fails))
	}
	if len(selectPoints(pts, "network.packets", "telegen.job.id", id)) != 0 {
		t.Errorf("job %s, ended while the collector was down, was exported later", id)
	}
	s.daemon.stop(t)
}

// TestParseDebugOutput pins the parser on the collector's own format.
func TestParseDebugOutput(t *testing.T) {
	const sample = "2026-11-22T02:37:49.452Z\tinfo\tResourceMetrics #0\n" +
		"Resource SchemaURL: \nResource attributes:\n     -> service.name: Str(telegen-sonic)\n" +
		"ScopeMetrics #0\nScopeMetrics SchemaURL: \nInstrumentationScope x \n" +
		"InstrumentationScope attributes:\n     -> telegen.job.id: Str(j1)\n" +
		"Metric #0\nDescriptor:\n     -> Name: network.packets\n     -> Description: d\n     -> Unit: {packet}\n" +
		"     -> DataType: Sum\n     -> IsMonotonic: true\n     -> AggregationTemporality: Cumulative\n" +
		"NumberDataPoints #0\nData point attributes:\n     -> telegen.job.id: Str(j1)\n     -> vlan: Int(7)\n" +
		"StartTimestamp: 1970-01-01 00:00:00 +0000 UTC\nTimestamp: 1970-01-01 00:00:00 +0000 UTC\nValue: 42\n" +
		"Metric #1\nDescriptor:\n     -> Name: network.latency\n     -> DataType: Histogram\n" +
		"HistogramDataPoints #0\nCount: 3\nSum: 10.000000\nExplicitBounds #0: 1.000000\nExplicitBounds #1: 5.000000\n" +
		"Buckets #0, Count: 1\nBuckets #1, Count: 2\nBuckets #2, Count: 0\n" +
		"\t{\"resource\": {}}\n2026-11-22T02:37:52.439Z\tinfo\tsomething else\n"
	pts, err := parseDebugOutput(strings.NewReader(sample))
	must(t, err)
	if len(pts) != 2 {
		t.Fatalf("%d points: %+v", len(pts), pts)
	}
	p, h := pts[0], pts[1]
	if p.Metric != "network.packets" || p.Type != "Sum" || !p.Monotonic || p.Value != "42" ||
		p.Attrs["vlan"] != "7" || p.Scope["telegen.job.id"] != "j1" || p.Resource["service.name"] != "telegen-sonic" {
		t.Errorf("sum point %+v", p)
	}
	if h.Metric != "network.latency" || h.Type != "Histogram" || h.Count != 3 || h.Sum != 10 ||
		!slices.Equal(h.Bounds, []float64{1, 5}) || !slices.Equal(h.Buckets, []uint64{1, 2, 0}) {
		t.Errorf("histogram point %+v", h)
	}
}
