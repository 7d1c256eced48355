package client

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

func TestParseJobRequest(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       map[string]string
	}{
		{"minimal", `{"port":"Ethernet16"}`, map[string]string{"port": "Ethernet16"}},
		{"full", `{"port":"Ethernet16","direction":"both","span_method":"direct","vlan":100,
			"filters":{"ip_proto":["tcp",17],"l4_sport":[80,"1000-2000"],"l4_dport":"443, 8443",
			"src_cidr":"10.0.0.0/8","dst_cidr":"10.1.0.0/16","dscp":[46,10]},
			"sample_rate":"1","duration_sec":30,"otlp_export":false,"result_detail":"flows"}`,
			map[string]string{
				"port": "Ethernet16", "direction": "both", "span_method": "direct", "vlan": "100",
				"ip_proto@": "tcp,17", "l4_sport@": "80,1000-2000", "l4_dport@": "443,8443",
				"src_cidr": "10.0.0.0/8", "dst_cidr": "10.1.0.0/16", "dscp@": "46,10",
				"sample_rate": "1", "duration_sec": "30", "otlp_export": "false", "result_detail": "flows",
			}},
		{"nulls and empties", `{"port":"E0","vlan":null,"filters":{"dscp":[],"ip_proto":null,"l4_dport":""},"otlp_export":"true"}`,
			map[string]string{"port": "E0", "otlp_export": "true"}},
		{"single values", `{"port":"E0","filters":{"dscp":46,"ip_proto":"udp"}}`,
			map[string]string{"port": "E0", "dscp@": "46", "ip_proto@": "udp"}},
		{"no port", `{}`, map[string]string{"port": ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := ParseJobRequest([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Fields(); !maps.Equal(got, c.want) {
				t.Errorf("Fields = %v\nwant %v", got, c.want)
			}
			// The Go client's encoding of the request parses back to the same fields.
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseJobRequest(b)
			if err != nil {
				t.Fatalf("re-parsing %s: %v", b, err)
			}
			if got := back.Fields(); !maps.Equal(got, c.want) {
				t.Errorf("after a round trip through %s: %v", b, got)
			}
		})
	}
}

func TestParseJobRequestErrors(t *testing.T) {
	for _, c := range []struct{ body, field, msg string }{
		{`[]`, "", "request body must be a JSON object"},
		{`not json`, "", "request body must be a JSON object"},
		{`{"port":"E0"} {"port":"E1"}`, "", "trailing data"},
		{`{"port":"E0","bogus":1}`, "bogus", "bogus: unknown field"},
		{`{"port":"E0","filters":{"dscpp":[1]}}`, "filters.dscpp", "filters.dscpp: unknown field"},
		{`{"port":"E0","filters":[1]}`, "filters", "filters: must be a JSON object"},
		{`{"port":5}`, "port", "port: must be a string"},
		{`{"port":"E0","vlan":true}`, "vlan", "vlan: must be a number"},
		{`{"port":"E0","vlan":[1]}`, "vlan", "vlan: must be a number"},
		{`{"port":"E0","otlp_export":"yes"}`, "otlp_export", "otlp_export: must be true or false"},
		{`{"port":"E0","filters":{"dscp":{"a":1}}}`, "filters.dscp", "filters.dscp: must be a list"},
		{`{"port":"E0","filters":{"dscp":[[1]]}}`, "filters.dscp", "filters.dscp: must be a list"},
		{`{"port":"E0","filters":{"src_cidr":[1]}}`, "filters.src_cidr", "filters.src_cidr: must be a string"},
	} {
		_, err := ParseJobRequest([]byte(c.body))
		e, ok := AsError(err)
		if !ok || e.Code != CodeInvalidArgument || e.Status != 400 || e.Field != c.field || !strings.Contains(e.Message, c.msg) {
			t.Errorf("ParseJobRequest(%s) = %#v; want 400 field %q message with %q", c.body, err, c.field, c.msg)
		}
	}
}

func TestValidateNamesRESTField(t *testing.T) {
	g := jobspec.DefaultGlobals()
	for _, c := range []struct{ body, field, why string }{
		{`{"port":"Ethernet0","filters":{"dscp":[99]}}`, "filters.dscp", `item "99": must be an integer 0-63`},
		{`{"port":"Ethernet0","filters":{"dscp":"1,99"}}`, "filters.dscp", `item "99"`},
		{`{"port":"Ethernet0","filters":{"dscp":["1,2"]}}`, "filters.dscp", `item "1,2": must be one non-empty value`},
		{`{"port":"Ethernet0","filters":{"l4_dport":["80-70"]}}`, "filters.l4_dport", "range start exceeds its end"},
		{`{"port":"Ethernet0","filters":{"src_cidr":"10.0.0.0/33"}}`, "filters.src_cidr", "prefix"},
		{`{"port":"Ethernet0","filters":{"ip_proto":["tcpp"]}}`, "filters.ip_proto", "tcpp"},
		{`{"port":"Ethernet0","vlan":5000}`, "vlan", "1-4094"},
		{`{"port":"Ethernet0","duration_sec":3601}`, "duration_sec", "1-3600"},
		{`{"port":"Ethernet0","direction":"sideways"}`, "direction", "ingress, egress or both"},
		{`{"port":""}`, "port", "must not be empty"},
		{`{"port":"Ethernet0|x"}`, "port", "port name"},
	} {
		req, err := ParseJobRequest([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		_, err = req.Validate("job1", g)
		e, ok := AsError(err)
		if !ok || e.Field != c.field || e.Status != 400 || !strings.HasPrefix(e.Message, c.field+": ") || !strings.Contains(e.Message, c.why) {
			t.Errorf("Validate(%s) = %#v; want field %q with %q", c.body, err, c.field, c.why)
		}
	}
	req, _ := ParseJobRequest([]byte(`{"port":"Ethernet0"}`))
	if _, err := req.Validate("bad|id", g); err == nil || !strings.HasPrefix(err.Error(), "job_id: ") {
		t.Errorf("Validate with id bad|id = %v; want a job_id error", err)
	}
	spec, err := req.Validate("job1", g)
	if err != nil || spec.Fields()["sample_rate"] != "100" || spec.Fields()["duration_sec"] != "120" {
		t.Errorf("Validate = %+v, %v; want the global defaults filled in", spec, err)
	}
}

func TestRESTField(t *testing.T) {
	for in, want := range map[string]string{
		"dscp@": "filters.dscp", "dscp": "filters.dscp", "ip_proto@": "filters.ip_proto", "l4_sport": "filters.l4_sport",
		"l4_dport@": "filters.l4_dport", "src_cidr": "filters.src_cidr", "dst_cidr": "filters.dst_cidr",
		"vlan": "vlan", "port": "port", "job_id": "job_id", "duration_sec": "duration_sec",
	} {
		if got := RESTField(in); got != want {
			t.Errorf("RESTField(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJobRequestJSON(t *testing.T) {
	otlp := false
	req := JobRequest{Port: "Ethernet16", VLAN: "100", DurationSec: "abc", OTLPExport: &otlp,
		Filters: Filters{DSCP: List{"46", "10"}, IPProto: List{"tcp"}, L4DstPort: List{"80-90"}}}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"port":"Ethernet16","vlan":100,"filters":{"ip_proto":["tcp"],"l4_dport":["80-90"],"dscp":[46,10]},"duration_sec":"abc","otlp_export":false}`
	if string(b) != want {
		t.Errorf("json = %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(JobRequest{Port: "E0"})
	if string(b) != `{"port":"E0"}` {
		t.Errorf("empty request json = %s", b)
	}
}

func TestErrorBody(t *testing.T) {
	b, _ := json.Marshal(&Error{Status: 429, Code: CodeConcurrencyLimit, Message: CapMessage(2)})
	if want := `{"error":"concurrency_limit","message":"At most 2 concurrent jobs are allowed. Try again later."}`; string(b) != want {
		t.Errorf("429 body = %s\nwant %s", b, want)
	}
	for code, status := range map[string]int{CodeInvalidArgument: 400, CodeConcurrencyLimit: 429, CodeUnavailable: 503,
		CodeFeatureDisabled: 503, CodeJobFailed: 502, CodeNotFound: 404, CodeNotReady: 409, "nonsense": 500} {
		if got := StatusOf(code); got != status {
			t.Errorf("StatusOf(%s) = %d, want %d", code, got, status)
		}
	}
}

func TestNewJobID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewJobID()
		if err := jobspec.ValidJobID(id); err != nil || len(id) != 36 || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewJobID() = %q (%v): not a valid v4 UUID job id", id, err)
		}
		if seen[id] {
			t.Fatalf("NewJobID repeated %s", id)
		}
		seen[id] = true
	}
}
