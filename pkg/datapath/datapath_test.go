package datapath

import (
	"strings"
	"testing"
)

func TestParseAttachMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AttachMode
	}{{"auto", AttachAuto}, {"tcx", AttachTCX}, {"clsact", AttachClsact}} {
		got, err := ParseAttachMode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAttachMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	for _, in := range []string{"", "TCX", "tc", "xdp"} {
		if _, err := ParseAttachMode(in); err == nil || !strings.Contains(err.Error(), "attach mode") {
			t.Errorf("ParseAttachMode(%q) error = %v, want one naming the attach mode", in, err)
		}
	}
}

func TestJobValidate(t *testing.T) {
	ok := Job{ID: "a", Interface: "Ethernet0", Ingress: true}
	if err := ok.validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	long := strings.Repeat("x", 64)
	for _, id := range []string{"a", "A9", "job_1.b-c", long, "550e8400-e29b-41d4-a716-446655440000"} {
		if err := validJobID(id); err != nil {
			t.Errorf("validJobID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", ".", "..", "a/b", "a:b", "a b", long + "x", "_a"} {
		if err := validJobID(id); err == nil {
			t.Errorf("validJobID(%q) = nil, want error", id)
		}
	}
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{ID: "a/b", Interface: "e", Ingress: true}, "job id"},
		{Job{ID: "a", Ingress: true}, "interface"},
		{Job{ID: "a", Interface: "e"}, "direction"},
	} {
		if err := tc.job.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.job, err, tc.want)
		}
	}
}
