package aggregate

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestFlowKeyString(t *testing.T) {
	for _, c := range []struct {
		key  FlowKey
		want string
	}{
		{FlowKey{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 12345, 443, 6, 0}, "10.0.0.1:12345->10.0.0.2:443/TCP"},
		{FlowKey{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 53, 5353, 17, 10}, "[2001:db8::1]:53->[2001:db8::2]:5353/UDP"},
		{FlowKey{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.9"), 0, 0, 1, 0}, "192.0.2.1:0->192.0.2.9:0/ICMP"},
		{FlowKey{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1"), 0, 0, 58, 0}, "[fe80::1]:0->[ff02::1]:0/ICMPV6"},
		{FlowKey{netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("10.1.1.2"), 0, 0, 47, 0}, "10.1.1.1:0->10.1.1.2:0/47"},
	} {
		if got := c.key.String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.key, got, c.want)
		}
	}
}

func TestFields(t *testing.T) {
	s := Snapshot{
		Ingress:    DirectionCounts{Packets: 10, Bytes: 1000},
		Egress:     DirectionCounts{Packets: 5, Bytes: 600},
		SampleRate: 100,
		Errors:     Errors{TCPRetrans: 2, Malformed: 1},
		TopFlows:   []Flow{{Key: FlowKey{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 1, 2, 17, 0}, Packets: 3, Bytes: 300}},
		Latency:    map[string]Histogram{"tcp.rtt": {Bounds: []uint64{1000}, Counts: []uint64{1, 2}, Sum: 5000, Count: 3}},
	}
	f := s.Fields()
	if f["packets_total"] != "15" || f["bytes_total"] != "1600" || f["sample_rate"] != "100" {
		t.Errorf("scalars: %v", f)
	}
	var errs map[string]uint64
	if err := json.Unmarshal([]byte(f["errors"]), &errs); err != nil || errs["tcp_retrans"] != 2 || errs["malformed"] != 1 || len(errs) != 3 {
		t.Errorf("errors = %s (%v), want l2_crc left out while unknown", f["errors"], err)
	}
	s.Errors.L2CRC, s.Errors.L2CRCKnown = 0, true
	if got := s.Fields()["errors"]; got != `{"l2_crc":0,"l3_checksum":0,"tcp_retrans":2,"malformed":1}` {
		t.Errorf("errors with a known l2_crc of 0 = %s", got)
	}
	var flows []map[string]any
	if err := json.Unmarshal([]byte(f["top_flows"]), &flows); err != nil || len(flows) != 1 || flows[0]["5tuple"] != "10.0.0.1:1->10.0.0.2:2/UDP" || flows[0]["bytes"] != 300.0 {
		t.Errorf("top_flows = %s (%v)", f["top_flows"], err)
	}
	if f["tcp_rtt_histogram_ns"] != `{"bounds":[1000],"counts":[1,2],"sum":5000,"count":3}` {
		t.Errorf("tcp rtt = %s", f["tcp_rtt_histogram_ns"])
	}
	if _, ok := f["latency_histogram_ns"]; ok {
		t.Error("latency_histogram_ns present without a network.latency histogram")
	}
}

func TestEstimatedAndDiagnostics(t *testing.T) {
	exact := Snapshot{SampleRate: 1}
	f := exact.Fields()
	if f["estimated"] != "[]" || f["filtered_packets"] != "0" {
		t.Errorf("rate 1: estimated %s filtered %s", f["estimated"], f["filtered_packets"])
	}
	if _, ok := f["capture"]; ok {
		t.Error("capture present without a capture")
	}
	if _, ok := f["unparsed_packets"]; ok {
		t.Error("unparsed_packets present while zero")
	}
	s := Snapshot{SampleRate: 100, Filtered: 7, Unparsed: 2, Capture: &CaptureCounts{Samples: 5, Lost: 1, Capped: 3}}
	f = s.Fields()
	var est []string
	if err := json.Unmarshal([]byte(f["estimated"]), &est); err != nil || len(est) != 3 || est[0] != "top_flows" {
		t.Errorf("estimated = %s (%v)", f["estimated"], err)
	}
	if f["filtered_packets"] != "7" || f["unparsed_packets"] != "2" || f["capture"] != `{"samples":5,"lost":1,"capped":3}` {
		t.Errorf("diagnostics: %v", f)
	}
}
