package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// jobCase is one case of testdata/jobs.json; the file is shared with the sonic-yang tests.
type jobCase struct {
	Desc    string            `json:"desc"`
	ID      *string           `json:"id"`
	Globals map[string]string `json:"globals"`
	Fields  map[string]string `json:"fields"`
	Want    map[string]string `json:"want"`
	EField  string            `json:"eField"`
	EWhy    string            `json:"eWhy"`
	GoOnly  string            `json:"goOnly"`
}

func (c jobCase) id() string {
	if c.ID == nil {
		return "job1"
	}
	return *c.ID
}

func loadCases(t testing.TB) map[string]jobCase {
	t.Helper()
	b, err := os.ReadFile("testdata/jobs.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc struct {
		Doc   string             `json:"_doc"`
		Cases map[string]jobCase `json:"cases"`
	}
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("testdata/jobs.json: %v", err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("testdata/jobs.json: no cases")
	}
	for name, c := range doc.Cases {
		if (c.Want == nil) == (c.EField == "") {
			t.Fatalf("testdata/jobs.json: case %s needs exactly one of want and eField", name)
		}
		if c.EField != "" && c.EWhy == "" {
			t.Fatalf("testdata/jobs.json: case %s has eField but no eWhy", name)
		}
	}
	return doc.Cases
}

func TestParseCases(t *testing.T) {
	cases := loadCases(t)
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			g, err := GlobalsFromFields(c.Globals)
			if err != nil {
				t.Fatalf("globals: %v", err)
			}
			s, err := Parse(c.id(), c.Fields, g)
			if c.EField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Parse = %+v, %v; want a *FieldError on %q", s, err, c.EField)
				}
				if fe.Field != c.EField || !strings.Contains(fe.Why, c.EWhy) {
					t.Fatalf("Parse error %q; want field %q with %q in the reason", err, c.EField, c.EWhy)
				}
				if !reflect.DeepEqual(s, Spec{}) {
					t.Errorf("Parse returned %+v with its error; want the zero Spec", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.Fields(); !maps.Equal(got, c.Want) {
				t.Errorf("Fields() = %v\nwant        %v", got, c.Want)
			}
			if s.ID != c.id() {
				t.Errorf("ID = %q, want %q", s.ID, c.id())
			}
			back, err := Parse(s.ID, s.Fields(), g)
			if err != nil {
				t.Fatalf("Parse(Fields()): %v", err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, s)
			}
		})
	}
}

// TestParseFull checks the typed values behind the canonical strings.
func TestParseFull(t *testing.T) {
	f := map[string]string{
		"port": "Ethernet16", "direction": "both", "span_method": "erspan", "vlan": "100",
		"ip_proto@": "udp,TCP,6", "l4_sport@": "1024-65535", "l4_dport@": "443,80,80-80",
		"src_cidr": "10.1.2.3/8", "dst_cidr": "192.0.2.1", "dscp@": "46,0,46",
		"sample_rate": "1", "duration_sec": "300", "otlp_export": "False", "result_detail": "flows",
		"expires_at": "2030-01-02T04:04:05.678999+01:00", "NULL": "NULL",
	}
	got, err := Parse("job.1", f, DefaultGlobals())
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		ID: "job.1", Port: "Ethernet16", Direction: Both, SpanMethod: ERSPAN, VLAN: 100,
		IPProtos:     []uint8{6, 17},
		L4SrcPorts:   []PortRange{{1024, 65535}},
		L4DstPorts:   []PortRange{{80, 80}, {443, 443}},
		SrcCIDR:      netip.MustParsePrefix("10.0.0.0/8"),
		DstCIDR:      netip.MustParsePrefix("192.0.2.1/32"),
		DSCPs:        []uint8{0, 46},
		SampleRate:   1,
		DurationSec:  300,
		OTLPExport:   false,
		ResultDetail: Flows,
		ExpiresAt:    time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if got.Duration() != 300*time.Second {
		t.Errorf("Duration() = %v", got.Duration())
	}
}

func TestParseDefaults(t *testing.T) {
	g := DefaultGlobals()
	g.DefaultDurationSec, g.DefaultSampleRate = 7, 9
	s, err := Parse("j", map[string]string{"port": "eth0"}, g)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{ID: "j", Port: "eth0", Direction: Ingress, SpanMethod: SPAN, SampleRate: 9,
		DurationSec: 7, OTLPExport: true, ResultDetail: Summary}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", s, want)
	}
	if s.SrcCIDR.IsValid() || s.DstCIDR.IsValid() || s.IPProtos != nil || s.DSCPs != nil ||
		s.L4SrcPorts != nil || s.L4DstPorts != nil || !s.ExpiresAt.IsZero() {
		t.Errorf("defaults are not 'any': %+v", s)
	}
}

// TestParseDeterministic repeats a multi-error parse: map order must never change the answer.
func TestParseDeterministic(t *testing.T) {
	f := map[string]string{"zzz": "1", "vlan": "0", "sample_rate": "0", "l4_dport": "x",
		"l4_sport@": "y", "direction": "up", "ip_proto": "tcp", "ip_proto@": "udp"}
	want := "direction: must be ingress, egress or both, not \"up\""
	for range 200 {
		_, err := Parse("j", f, DefaultGlobals())
		if err == nil || err.Error() != want {
			t.Fatalf("Parse error %v, want %s", err, want)
		}
	}
}

func TestParseEmptyFieldName(t *testing.T) {
	_, err := Parse("j", map[string]string{"port": "e", "": "x"}, DefaultGlobals())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field == "" || fe.Why != "unknown field" {
		t.Fatalf("Parse error %#v; want unknown field with a non-empty name", err)
	}
}

func TestReason(t *testing.T) {
	_, err := Parse("j", map[string]string{"port": "e", "dscp@": "64"}, DefaultGlobals())
	if got, want := Reason(err), `invalid: dscp@: item "64": must be an integer 0-63`; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("job j: %w", &FieldError{Field: "port", Why: "not in CONFIG_DB PORT"})
	if got, want := Reason(wrapped), "invalid: port: not in CONFIG_DB PORT"; got != want {
		t.Errorf("Reason(wrapped) = %q, want %q", got, want)
	}
	if got, want := Reason(errors.New("boom")), "invalid: boom"; got != want {
		t.Errorf("Reason(plain) = %q, want %q", got, want)
	}
	if got := Reason(nil); got != "" {
		t.Errorf("Reason(nil) = %q", got)
	}
	if got, want := MirrorFailed("no route"), "mirror_failed: no route"; got != want {
		t.Errorf("MirrorFailed = %q", got)
	}
	if got, want := AttachFailed("EPERM"), "attach_failed: EPERM"; got != want {
		t.Errorf("AttachFailed = %q", got)
	}
}

func TestErrorQuotesAreBounded(t *testing.T) {
	_, err := Parse("j", map[string]string{"port": "e", "vlan": strings.Repeat("9", 10000)}, DefaultGlobals())
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error %d bytes long: %.300v", len(fmt.Sprint(err)), err)
	}
}

func TestDirection(t *testing.T) {
	for _, c := range []struct {
		d       Direction
		in, out bool
	}{{Ingress, true, false}, {Egress, false, true}, {Both, true, true}, {"", false, false}} {
		if c.d.Ingress() != c.in || c.d.Egress() != c.out {
			t.Errorf("%q: Ingress %v Egress %v", c.d, c.d.Ingress(), c.d.Egress())
		}
	}
}

func TestPortRange(t *testing.T) {
	r := PortRange{1000, 2000}
	if r.String() != "1000-2000" || (PortRange{80, 80}).String() != "80" {
		t.Errorf("String: %s %s", r, PortRange{80, 80})
	}
	for p, want := range map[uint16]bool{999: false, 1000: true, 1500: true, 2000: true, 2001: false} {
		if r.Contains(p) != want {
			t.Errorf("Contains(%d) = %v", p, !want)
		}
	}
	if !(PortRange{0, 65535}).Contains(65535) {
		t.Error("full range misses 65535")
	}
}

func TestIPProtoName(t *testing.T) {
	for p, want := range map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 47: "47", 0: "0"} {
		if got := IPProtoName(p); got != want {
			t.Errorf("IPProtoName(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	all := []Status{Pending, Starting, Running, Stopping, Done, Stopped, Failed, Rejected}
	live := map[Status]bool{Starting: true, Running: true, Stopping: true}
	terminal := map[Status]bool{Done: true, Stopped: true, Failed: true, Rejected: true}
	for _, s := range all {
		if s.Live() != live[s] || s.Terminal() != terminal[s] {
			t.Errorf("%s: Live %v Terminal %v", s, s.Live(), s.Terminal())
		}
		got, err := ParseStatus(string(s))
		if err != nil || got != s {
			t.Errorf("ParseStatus(%q) = %q, %v", s, got, err)
		}
	}
	var fe *FieldError
	if _, err := ParseStatus("Running"); !errors.As(err, &fe) || fe.Field != "status" {
		t.Errorf("ParseStatus(Running) error %v", err)
	}
}

func TestTime(t *testing.T) {
	tm := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	s := FormatTime(tm)
	if s != "2025-03-04T04:06:07.891Z" {
		t.Fatalf("FormatTime = %q", s)
	}
	back, err := ParseTime(s)
	if err != nil || !back.Equal(tm.Truncate(time.Millisecond)) || back.Location() != time.UTC {
		t.Fatalf("ParseTime(%q) = %v, %v", s, back, err)
	}
	if FormatTime(time.Time{}) != "" {
		t.Error("zero time not empty")
	}
	if z, err := ParseTime(""); err != nil || !z.IsZero() {
		t.Errorf(`ParseTime("") = %v, %v`, z, err)
	}
	for _, bad := range []string{"now", "2025-03-04", "0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}
