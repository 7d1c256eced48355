package daemon

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/datapath"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
)

// TestDatapathJob: a spec's filters, sampling and detail become the kernel job's.
func TestDatapathJob(t *testing.T) {
	spec := jobspec.Spec{
		ID: "j", Port: "Ethernet0", Direction: jobspec.Both, VLAN: 10,
		IPProtos:     []uint8{6, 17},
		L4SrcPorts:   []jobspec.PortRange{{Lo: 80, Hi: 80}},
		L4DstPorts:   []jobspec.PortRange{{Lo: 1000, Hi: 2000}},
		SrcCIDR:      netip.MustParsePrefix("10.0.0.0/8"),
		DstCIDR:      netip.MustParsePrefix("192.0.2.0/24"),
		DSCPs:        []uint8{46},
		SampleRate:   100,
		ResultDetail: jobspec.PcapLike,
	}
	got := datapathJob(spec, reconciler.Source{Interface: "Ethernet0", ERSPANSessionID: -1}, 50)
	want := datapath.Job{
		ID: "j", Interface: "Ethernet0", Ingress: true, Egress: true,
		Filter: datapath.Filter{
			VLAN: 10, IPProtos: []uint8{6, 17},
			SrcPorts: []datapath.PortRange{{Lo: 80, Hi: 80}},
			DstPorts: []datapath.PortRange{{Lo: 1000, Hi: 2000}},
			SrcCIDR:  spec.SrcCIDR, DstCIDR: spec.DstCIDR, DSCPs: []uint8{46},
		},
		SampleRate: 100, TopK: 50,
		Capture: &datapath.CaptureConfig{SnapLen: captureSnapLen, MaxPackets: captureMaxPackets,
			MaxBytes: captureMaxBytes, RatePPS: captureRatePPS},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("datapathJob =\n%+v\nwant\n%+v", got, want)
	}

	spec.ResultDetail = jobspec.Summary
	got = datapathJob(spec, reconciler.Source{Interface: "sink0", Mirrored: true, ERSPAN: true, ERSPANSessionID: 7}, 50)
	if got.Capture != nil || !got.Ingress || got.Egress || got.Interface != "sink0" || got.ERSPAN == nil || got.ERSPAN.SessionID != 7 {
		t.Errorf("summary job over ERSPAN: %+v", got)
	}
	got = datapathJob(spec, reconciler.Source{Interface: "sink1", Mirrored: true, ERSPANSessionID: -1}, 50)
	if !got.Ingress || got.Egress || got.ERSPAN != nil {
		t.Errorf("SPAN job: %+v", got)
	}
	got = datapathJob(spec, reconciler.Source{Interface: "sink0", Mirrored: true, ERSPAN: true, ERSPANSessionID: -1}, 50)
	if got.ERSPAN == nil || got.ERSPAN.SessionID != -1 {
		t.Errorf("ERSPAN job of any session: %+v", got)
	}
}
