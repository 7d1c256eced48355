package jobspec

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestGlobalsDefaults(t *testing.T) {
	want := Globals{MaxConcurrentJobs: 2, MaxJobsQueue: 0, DefaultDurationSec: 120, MaxDurationSec: 3600,
		DefaultSampleRate: 100, TopKFlows: 1024, ExportIntervalSec: 10, OTLPEndpoint: "", ResultHistory: 100}
	if got := DefaultGlobals(); got != want {
		t.Fatalf("DefaultGlobals = %+v", got)
	}
	for _, f := range []map[string]string{nil, {}, {"NULL": "NULL"},
		{"erspan_src_ip": "10.0.0.1", "span_dst_port": "Ethernet64", "future_knob": "whatever"},
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
		"result_history": "10000", "erspan_dst_ip": "192.0.2.9",
	}
	g, err := GlobalsFromFields(all)
	if err != nil {
		t.Fatal(err)
	}
	want := Globals{MaxConcurrentJobs: 64, MaxJobsQueue: 1024, DefaultDurationSec: 1, MaxDurationSec: 86400,
		DefaultSampleRate: 1000000, TopKFlows: 65536, ExportIntervalSec: 3600,
		OTLPEndpoint: "https://collector.example:4318/v1/metrics", ResultHistory: 10000}
	if g != want {
		t.Fatalf("GlobalsFromFields = %+v\nwant %+v", g, want)
	}
	back, err := GlobalsFromFields(g.Fields())
	if err != nil || back != g {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	d := DefaultGlobals().Fields()
	if len(d) != 9 || d["otlp_endpoint"] != "" || d["result_history"] != "100" {
		t.Errorf("DefaultGlobals().Fields() = %v", d)
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
		GlobalResultHistory, GlobalTopKFlows}
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
