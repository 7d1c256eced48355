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
	if err := json.Unmarshal([]byte(f["errors"]), &errs); err != nil || errs["tcp_retrans"] != 2 || errs["malformed"] != 1 || len(errs) != 4 {
		t.Errorf("errors = %s (%v)", f["errors"], err)
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
