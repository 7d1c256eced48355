package jobspec

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestGlobalsDefaults(t *testing.T) {
	want := Globals{MaxConcurrentJobs: 2, MaxJobsQueue: 0, DefaultDurationSec: 120, MaxDurationSec: 3600,
		DefaultSampleRate: 100, TopKFlows: 1024, ExportIntervalSec: 10, OTLPEndpoint: "", ResultHistory: 100,
		ERSPANGREType: 0x88be, ERSPANTTL: 64, ERSPANPlatformSessionID: AnySessionID, MirrorTimeoutSec: 5,
		ACLPrefilter: true}
	if got := DefaultGlobals(); got != want {
		t.Fatalf("DefaultGlobals = %+v", got)
	}
	for _, f := range []map[string]string{nil, {}, {"NULL": "NULL"},
		{"future_knob": "whatever", "span_dst_port": "", "erspan_src_ip": ""},
		want.Fields()} {
		g, err := GlobalsFromFields(f)
		if err != nil || g != want {
			t.Errorf("GlobalsFromFields(%v) = %+v, %v; want defaults", f, g, err)
		}
	}
}

func TestGlobalsFromFields(t *testing.T) {
	all := map[string]string{
		"max_concurrent_jobs": "64", "max_jobs_queue": "1024", "default_duration_sec": "1",
		"max_duration_sec": "86400", "default_sample_rate": "1000000", "topk_flows": "65536",
		"export_interval_sec": "3600", "otlp_endpoint": "https://collector.example:4318/v1/metrics",
		"result_history": "10000",
		"span_dst_port":  "Ethernet64", "span_sink_netdev": "telegen-span0",
		"erspan_src_ip": "10.1.0.1", "erspan_dst_ip": "192.0.2.9", "erspan_sink_netdev": "telegen-erspan0",
		"erspan_gre_type": "0x22EB", "erspan_dscp": "63", "erspan_ttl": "255", "erspan_queue": "7",
		"erspan_platform_session_id": "1023", "mirror_timeout_sec": "60", "acl_prefilter": "False",
	}
	g, err := GlobalsFromFields(all)
	if err != nil {
		t.Fatal(err)
	}
	want := Globals{MaxConcurrentJobs: 64, MaxJobsQueue: 1024, DefaultDurationSec: 1, MaxDurationSec: 86400,
		DefaultSampleRate: 1000000, TopKFlows: 65536, ExportIntervalSec: 3600,
		OTLPEndpoint: "https://collector.example:4318/v1/metrics", ResultHistory: 10000,
		SpanDstPort: "Ethernet64", SpanSinkNetdev: "telegen-span0",
		ERSPANSrcIP: netip.MustParseAddr("10.1.0.1"), ERSPANDstIP: netip.MustParseAddr("192.0.2.9"),
		ERSPANSinkNetdev: "telegen-erspan0", ERSPANGREType: 0x22eb, ERSPANDSCP: 63, ERSPANTTL: 255,
		ERSPANQueue: 7, ERSPANPlatformSessionID: 1023, MirrorTimeoutSec: 60, ACLPrefilter: false}
	if g != want {
		t.Fatalf("GlobalsFromFields = %+v\nwant %+v", g, want)
	}
	back, err := GlobalsFromFields(g.Fields())
	if err != nil || back != g {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	d := DefaultGlobals().Fields()
	if len(d) != 21 || d["otlp_endpoint"] != "" || d["result_history"] != "100" ||
		d["erspan_gre_type"] != "0x88be" || d["erspan_platform_session_id"] != "any" ||
		d["acl_prefilter"] != "true" || d["span_dst_port"] != "" {
		t.Errorf("DefaultGlobals().Fields() = %v", d)
	}
	for _, c := range []struct{ in, out string }{{"2090", "0x82a"}, {"0", "0x0"}, {"0XFFFF", "0xffff"}} {
		g, err := GlobalsFromFields(map[string]string{"erspan_gre_type": c.in})
		if err != nil || g.Fields()["erspan_gre_type"] != c.out {
			t.Errorf("erspan_gre_type %q: %+v, %v; want rendered %q", c.in, g, err, c.out)
		}
	}
	for _, c := range []struct {
		dst, sink, want string
	}{{"Ethernet64", "", "Ethernet64"}, {"Ethernet64", "sink0", "sink0"}, {"", "", ""}} {
		if got := (Globals{SpanDstPort: c.dst, SpanSinkNetdev: c.sink}).SpanSink(); got != c.want {
			t.Errorf("SpanSink(%q, %q) = %q, want %q", c.dst, c.sink, got, c.want)
		}
	}
	for _, ep := range []string{"127.0.0.1:4318", "[::1]:4318", "collector:4317", "http://localhost", "http://[::1]:4318/v1/metrics"} {
		if g, err := GlobalsFromFields(map[string]string{"otlp_endpoint": ep}); err != nil || g.OTLPEndpoint != ep {
			t.Errorf("otlp_endpoint %q: %+v, %v", ep, g, err)
		}
	}
}

func TestGlobalsFromFieldsBad(t *testing.T) {
	for _, c := range []struct {
		fields map[string]string
		field  string
		why    string
	}{
		{map[string]string{"max_concurrent_jobs": "0"}, "max_concurrent_jobs", "must be an integer 1-64"},
		{map[string]string{"max_concurrent_jobs": "65"}, "max_concurrent_jobs", "1-64"},
		{map[string]string{"max_concurrent_jobs": "two"}, "max_concurrent_jobs", "1-64"},
		{map[string]string{"max_jobs_queue": "-1"}, "max_jobs_queue", "0-1024"},
		{map[string]string{"max_jobs_queue": "+1"}, "max_jobs_queue", "0-1024"}, // digits only, as job fields
		{map[string]string{"erspan_platform_session_id": "+17"}, "erspan_platform_session_id", "0-1023"},
		{map[string]string{"max_jobs_queue": "1025"}, "max_jobs_queue", "0-1024"},
		{map[string]string{"default_duration_sec": "0"}, "default_duration_sec", "1-86400"},
		{map[string]string{"max_duration_sec": "86401"}, "max_duration_sec", "1-86400"},
		{map[string]string{"default_duration_sec": "600", "max_duration_sec": "300"}, "default_duration_sec", "must not exceed max_duration_sec (300)"},
		{map[string]string{"default_duration_sec": "3601"}, "default_duration_sec", "must not exceed max_duration_sec (3600)"},
		{map[string]string{"default_sample_rate": "0"}, "default_sample_rate", "1-1000000"},
		{map[string]string{"default_sample_rate": "1000001"}, "default_sample_rate", "1-1000000"},
		{map[string]string{"topk_flows": "0"}, "topk_flows", "1-65536"},
		{map[string]string{"topk_flows": "65537"}, "topk_flows", "1-65536"},
		{map[string]string{"export_interval_sec": "0"}, "export_interval_sec", "1-3600"},
		{map[string]string{"export_interval_sec": "3601"}, "export_interval_sec", "1-3600"},
		{map[string]string{"result_history": "0"}, "result_history", "1-10000"},
		{map[string]string{"result_history": "10001"}, "result_history", "1-10000"},
		{map[string]string{"result_history": ""}, "result_history", "1-10000"},
		{map[string]string{"otlp_endpoint": "localhost"}, "otlp_endpoint", "host:port"},
		{map[string]string{"otlp_endpoint": ":4318"}, "otlp_endpoint", "host:port"},
		{map[string]string{"otlp_endpoint": "host:0"}, "otlp_endpoint", "host:port"},
		{map[string]string{"otlp_endpoint": "host:http"}, "otlp_endpoint", "host:port"},
		{map[string]string{"otlp_endpoint": "grpc://host:4317"}, "otlp_endpoint", "http(s) URL"},
		{map[string]string{"otlp_endpoint": "http://"}, "otlp_endpoint", "http(s) URL"},
		{map[string]string{"otlp_endpoint": "http://h:99999"}, "otlp_endpoint", "http(s) URL"},
		{map[string]string{"otlp_endpoint": "host :4318"}, "otlp_endpoint", "host:port"},
		{map[string]string{"span_dst_port": "Ethernet 4"}, "span_dst_port", "port name"},
		{map[string]string{"span_sink_netdev": "a-name-longer-than15"}, "span_sink_netdev", "interface name"},
		{map[string]string{"erspan_sink_netdev": "a/b"}, "erspan_sink_netdev", "interface name"},
		{map[string]string{"erspan_sink_netdev": ".."}, "erspan_sink_netdev", "interface name"},
		{map[string]string{"erspan_src_ip": "2001:db8::1"}, "erspan_src_ip", "IPv4 address"},
		{map[string]string{"erspan_dst_ip": "10.0.0.0/8"}, "erspan_dst_ip", "IPv4 address"},
		{map[string]string{"erspan_gre_type": "0x10000"}, "erspan_gre_type", "GRE protocol type"},
		{map[string]string{"erspan_gre_type": "0x"}, "erspan_gre_type", "GRE protocol type"},
		{map[string]string{"erspan_gre_type": "-1"}, "erspan_gre_type", "GRE protocol type"},
		{map[string]string{"erspan_dscp": "64"}, "erspan_dscp", "0-63"},
		{map[string]string{"erspan_ttl": "0"}, "erspan_ttl", "1-255"},
		{map[string]string{"erspan_queue": "256"}, "erspan_queue", "0-255"},
		{map[string]string{"erspan_platform_session_id": "1024"}, "erspan_platform_session_id", "0-1023"},
		{map[string]string{"erspan_platform_session_id": "ANY"}, "erspan_platform_session_id", "0-1023"},
		{map[string]string{"mirror_timeout_sec": "0"}, "mirror_timeout_sec", "1-60"},
		{map[string]string{"acl_prefilter": "yes"}, "acl_prefilter", "true or false"},
		// Several bad: the first by name wins.
		{map[string]string{"topk_flows": "0", "max_concurrent_jobs": "0", "result_history": "0"}, "max_concurrent_jobs", "1-64"},
	} {
		g, err := GlobalsFromFields(c.fields)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Why, c.why) {
			t.Errorf("GlobalsFromFields(%v) = %+v, %v; want field %q with %q", c.fields, g, err, c.field, c.why)
			continue
		}
		if g != (Globals{}) {
			t.Errorf("GlobalsFromFields(%v) returned %+v with its error", c.fields, g)
		}
		if !strings.HasPrefix(err.Error(), c.field+": ") {
			t.Errorf("error %q does not start with the field", err)
		}
	}
}

func TestGlobalsFieldsKeys(t *testing.T) {
	want := []string{GlobalDefaultDurationSec, GlobalDefaultSampleRate, GlobalExportIntervalSec,
		GlobalMaxConcurrentJobs, GlobalMaxDurationSec, GlobalMaxJobsQueue, GlobalOTLPEndpoint,
		GlobalResultHistory, GlobalTopKFlows,
		GlobalSpanDstPort, GlobalSpanSinkNetdev, GlobalERSPANSrcIP, GlobalERSPANDstIP,
		GlobalERSPANSinkNetdev, GlobalERSPANGREType, GlobalERSPANDSCP, GlobalERSPANTTL,
		GlobalERSPANQueue, GlobalERSPANPlatformSessionID, GlobalMirrorTimeoutSec, GlobalACLPrefilter}
	got := DefaultGlobals().Fields()
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("Fields() lacks %s", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Fields() keys %v", slices.Sorted(maps.Keys(got)))
	}
}
