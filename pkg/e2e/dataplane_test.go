package e2e

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// The data-plane tests: real captures and generated mixes replayed through a veth into the
// daemon's eBPF program, the job's result judged by tshark on the same capture under the same
// filter. Both attach modes.

// dpSharedPcaps lists the captures of the steering repository's pcaps/.
func dpSharedPcaps(t testing.TB) []string {
	t.Helper()
	root, err := repoRoot()
	must(t, err)
	files, err := filepath.Glob(filepath.Join(root, "..", "shared", "pcaps", "*.pcap"))
	must(t, err)
	if len(files) == 0 {
		testenv.Skip(t, "no shared captures beside the repository (../shared/pcaps)")
	}
	return files
}

// dpIsMalformedCapture: the README's malformed group.
func dpIsMalformedCapture(name string) bool {
	return strings.Contains(name, "heapoverflow") || strings.Contains(name, "oobr") ||
		name == "cve2015-0261-ipv6.pcap" || name == "ip6_frag_asan.pcap" || name == "ipv6-bad-version.pcap"
}

// TestDataplaneSharedPcaps replays every Ethernet capture of ../shared/pcaps, each into a job of
// its own at sample_rate 1: totals, every flow, malformed frames, checksum errors and
// retransmissions as tshark counts them. The malformed captures are counted as such and no job
// is aborted by them.
func TestDataplaneSharedPcaps(t *testing.T) {
	files := dpSharedPcaps(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			s.startDaemon()
			malformed := 0
			for i, f := range files {
				name := filepath.Base(f)
				path, why := dpReplayable(t, f)
				if path == "" {
					t.Logf("%s: skipped: %s", name, why)
					continue
				}
				want := dpJudge(t, path, "", true)
				id := fmt.Sprint("pcap", i)
				s.dpJob(id, "Ethernet16")
				s.dpReplay("Ethernet16", path)
				s.waitField(id, "packets_total", strconv.Itoa(want.Frames), 3*time.Second)
				res := s.dpResult(id)
				dpCheckExact(t, name, res, want)
				if dpIsMalformedCapture(name) {
					if want.Malformed == 0 || dpErrors(t, res).Malformed == 0 {
						t.Errorf("%s: malformed %d, tshark %d; want the capture counted as malformed", name, dpErrors(t, res).Malformed, want.Malformed)
					}
					malformed++
				}
				t.Logf("%s: %d frames, %d flows, %d malformed, %d bad IPv4 checksums, %d retransmissions: as tshark",
					name, want.Frames, len(want.Flows), want.Malformed, want.L3Checksum, want.TCPRetrans)
			}
			if malformed == 0 {
				t.Error("no malformed capture was replayed")
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestDataplaneMixes replays the generated mixes (many flows, IPv4/IPv6, VLANs, DSCP marks,
// retransmissions, corrupt IPv4 checksums) into sample_rate 1 jobs.
func TestDataplaneMixes(t *testing.T) {
	mixes := []struct {
		mix     string
		n       int
		retrans bool
	}{{"all", 3000, false}, {"vlan", 1500, false}, {"ipv6", 1500, false}, {"retrans", 4000, true}, {"badcsum", 3000, false}}
	pcaps := make(map[string]string)
	for _, m := range mixes {
		pcaps[m.mix] = genPcap(t, m.mix, m.n)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			s.startDaemon()
			for _, m := range mixes {
				want := dpJudge(t, pcaps[m.mix], "", m.retrans)
				s.dpJob(m.mix, "Ethernet16")
				s.dpReplay("Ethernet16", pcaps[m.mix])
				s.waitField(m.mix, "packets_total", strconv.Itoa(want.Frames), 3*time.Second)
				dpCheckExact(t, m.mix, s.dpResult(m.mix), want)
				t.Logf("%s: %d frames, %d flows, %d bad IPv4 checksums, %d retransmissions: as tshark",
					m.mix, want.Frames, len(want.Flows), want.L3Checksum, want.TCPRetrans)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// dpTsharkFilter translates a job's filter fields into a tshark display filter with the same
// meaning (docs/DATAPLANE.md, "filters"), for captures without tunnels or ICMP errors.
func dpTsharkFilter(fields map[string]string) string {
	var and []string
	list := func(v string) string {
		var items []string
		for _, it := range strings.Split(v, ",") {
			items = append(items, strings.Replace(it, "-", "..", 1))
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	protoNums := map[string]string{"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58", "sctp": "132"}
	for k, v := range fields {
		switch k {
		case "vlan":
			and = append(and, fmt.Sprintf("(vlan.id == %s || ieee8021ad.id == %s)", v, v))
		case "ip_proto@":
			var nums []string
			for _, p := range strings.Split(v, ",") {
				if n, ok := protoNums[p]; ok {
					p = n
				}
				nums = append(nums, p)
			}
			set := list(strings.Join(nums, ","))
			and = append(and, fmt.Sprintf("(ip.proto in %s || ipv6.nxt in %s)", set, set))
		case "l4_sport@", "l4_dport@":
			dir := "srcport"
			if k == "l4_dport@" {
				dir = "dstport"
			}
			set := list(v)
			and = append(and, fmt.Sprintf("(tcp.%s in %s || udp.%s in %s || sctp.%s in %s)", dir, set, dir, set, dir, set))
		case "src_cidr", "dst_cidr":
			fam, end := "ip", "src"
			if strings.Contains(v, ":") {
				fam = "ipv6"
			}
			if k == "dst_cidr" {
				end = "dst"
			}
			and = append(and, fmt.Sprintf("%s.%s == %s", fam, end, v))
		case "dscp@":
			set := list(v)
			and = append(and, fmt.Sprintf("(ip.dsfield.dscp in %s || ipv6.tclass.dscp in %s)", set, set))
		}
	}
	slices.Sort(and)
	return strings.Join(and, " && ")
}

// TestDataplaneFilters runs several filtered jobs at once on one port (separate program
// instances), IPv6 filters included, replays one mix, and judges each job by tshark under the
// translated filter.
func TestDataplaneFilters(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "filters.pcap")
	run(t, trafgenBin, "-o", pcap, "-n", "4000", "-mix", "all", "-flows", "36", "-seed", "11")
	jobs := []map[string]string{
		{"vlan": "10"},
		{"ip_proto@": "tcp,udp", "l4_dport@": "443,5001,9000-9100"},
		{"src_cidr": "10.1.0.0/26", "dscp@": "0,46"},
		{"dst_cidr": "2001:db8:2::/64", "ip_proto@": "udp,icmpv6"},
		{"src_cidr": "2001:db8:1::10/124"},
		{"l4_sport@": "32768-32780,32790", "dscp@": "10,26,34"},
		{"vlan": "100", "ip_proto@": "icmp"},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			must(t, s.config.HSet(context.Background(), "TELEGEN|global", "max_concurrent_jobs", "8").Err())
			s.startDaemon()
			for i, f := range jobs {
				var kv []string
				for k, v := range f {
					kv = append(kv, k, v)
				}
				s.dpJob(fmt.Sprint("f", i), "Ethernet16", kv...)
			}
			s.dpReplay("Ethernet16", pcap)
			for i, f := range jobs {
				filter := dpTsharkFilter(f)
				want := dpJudge(t, pcap, filter, false)
				if want.Frames == 0 {
					t.Fatalf("filter %q selects nothing: a useless case", filter)
				}
				id := fmt.Sprint("f", i)
				s.waitField(id, "packets_total", strconv.Itoa(want.Frames), 3*time.Second)
				res := s.dpResult(id)
				dpCheckExact(t, filter, res, want)
				if res["filtered_packets"] != strconv.Itoa(4000-want.Frames) {
					t.Errorf("%s: filtered_packets %s, want %d", filter, res["filtered_packets"], 4000-want.Frames)
				}
				t.Logf("%s: %d frames, %d flows: as tshark", filter, want.Frames, len(want.Flows))
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestDataplaneSampling: at sample_rate 100 on 120 000 frames the totals stay exact and the
// sampled estimates (sampled frames, flows, bad checksums) fall within 3σ of tshark's counts.
func TestDataplaneSampling(t *testing.T) {
	const n, rate = 120000, 100
	pcap := filepath.Join(t.TempDir(), "sampling.pcap")
	run(t, trafgenBin, "-o", pcap, "-n", strconv.Itoa(n), "-mix", "badcsum", "-flows", "20", "-seed", "5")
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			want := dpJudge(t, pcap, "", false)
			s := newSwitch(t, mode, "Ethernet16")
			s.startDaemon()
			s.dpJob("s", "Ethernet16", "sample_rate", strconv.Itoa(rate))
			s.dpReplay("Ethernet16", pcap)
			s.waitField("s", "packets_total", strconv.Itoa(n), 5*time.Second)
			res := s.dpResult("s")
			if res["bytes_total"] != strconv.FormatUint(want.Bytes, 10) || res["sample_rate"] != "100" {
				t.Errorf("bytes_total %s sample_rate %s, want %d exactly at rate 100", res["bytes_total"], res["sample_rate"], want.Bytes)
			}
			var est []string
			must(t, json.Unmarshal([]byte(res["estimated"]), &est))
			if !slices.Contains(est, "top_flows") || !slices.Contains(est, "errors.l3_checksum") {
				t.Errorf("estimated = %s, want the flows and the sampled errors", res["estimated"])
			}
			// Each estimate is rate × a binomial count: its σ is sqrt(rate-1) × sqrt(Σ x²) of
			// the quantity x counted per frame. Bounds are set for a false alarm in well under
			// one CI run in ten thousand (a 3σ bound on each of several figures in two modes
			// fails about one run in a hundred by chance alone): a single figure 4.5σ.
			z := func(what string, got, truth, sumSq float64) float64 {
				t.Helper()
				dev := math.Abs(got-truth) / math.Sqrt((rate-1)*sumSq)
				t.Logf("%s: estimate %.0f, truth %.0f: %.2fσ", what, got, truth, dev)
				return dev
			}
			sampled, _ := strconv.ParseFloat(res["sampled_packets"], 64)
			if dev := z("sampled frames", sampled*rate, n, n); dev > 4.5 {
				t.Errorf("sampled frames %.0f: %.1fσ from 1 in %d of %d", sampled, dev, rate, n)
			}
			if dev := z("l3_checksum", float64(dpErrors(t, res).L3Checksum), float64(want.L3Checksum), float64(want.L3Checksum)); dev > 4.5 {
				t.Errorf("l3_checksum estimate %.1fσ from tshark's %d", dev, want.L3Checksum)
			}
			// The ten largest flows (by tshark: the result's own order favours the lucky ones),
			// packets and bytes: none beyond 5σ, at most three of the twenty beyond 3σ (by
			// chance: about once in four million runs). Over 200 packet estimates (ten runs)
			// the mean z² was 1.06: binomial, as it should be.
			got := make(map[string]dpResultFlow)
			for _, f := range dpFlows(t, res) {
				got[dpFlowID(f.FiveTuple, f.VLAN)] = f
			}
			if len(got) != len(want.Flows) {
				t.Errorf("%d flows, tshark %d", len(got), len(want.Flows))
			}
			keys := slices.Collect(maps.Keys(want.Flows))
			slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(want.Flows[b].Bytes, want.Flows[a].Bytes) })
			beyond := 0
			for _, k := range keys[:min(10, len(keys))] {
				w, f := want.Flows[k], got[k]
				for _, dev := range []float64{
					z(k+" pkts", float64(f.Pkts), float64(w.Pkts), float64(w.Pkts)),
					z(k+" bytes", float64(f.Bytes), float64(w.Bytes), w.SqBytes),
				} {
					if dev > 5 {
						t.Errorf("flow %s: an estimate %.1fσ off", k, dev)
					}
					if dev > 3 {
						beyond++
					}
				}
			}
			if beyond > 3 {
				t.Errorf("%d flow estimates beyond 3σ, want at most 3", beyond)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestDataplaneTwoPorts: jobs on two ports at once count only their own port's traffic.
func TestDataplaneTwoPorts(t *testing.T) {
	a, b := genPcap(t, "all", 2000), genPcap(t, "retrans", 2000)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			wa, wb := dpJudge(t, a, "", false), dpJudge(t, b, "", true)
			s := newSwitch(t, mode, "Ethernet16", "Ethernet20")
			s.startDaemon()
			s.dpJob("a", "Ethernet16")
			s.dpJob("b", "Ethernet20")
			s.dpReplay("Ethernet16", a)
			s.dpReplay("Ethernet20", b)
			s.waitField("a", "packets_total", strconv.Itoa(wa.Frames), 3*time.Second)
			s.waitField("b", "packets_total", strconv.Itoa(wb.Frames), 3*time.Second)
			dpCheckExact(t, "Ethernet16", s.dpResult("a"), wa)
			dpCheckExact(t, "Ethernet20", s.dpResult("b"), wb)
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestDataplaneLatency replays TCP conversations at their recorded pace: each handshake's
// SYN-ACK and each ACK of data comes 10 ms after what it answers, so network.latency has one
// sample per handshake and tcp.rtt one per acknowledged segment, each near 10 ms.
func TestDataplaneLatency(t *testing.T) {
	const convs, datas, gap = 3, 4, 10 * time.Millisecond
	pcap := filepath.Join(t.TempDir(), "latency.pcap")
	must(t, os.WriteFile(pcap, dpLatencyPcap(convs, datas, gap), 0o644))
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			s.startDaemon()
			s.dpJob("lat", "Ethernet16")
			s.replay("Ethernet16", pcap) // at the recorded pace
			res := s.dpResult("lat")
			for field, n := range map[string]uint64{"latency_histogram_ns": convs, "tcp_rtt_histogram_ns": convs * datas} {
				var h aggregate.Histogram
				must(t, json.Unmarshal([]byte(res[field]), &h))
				if h.Count != n || len(h.Counts) != len(h.Bounds)+1 {
					t.Errorf("%s: %d samples, %d counts for %d bounds; want %d samples", field, h.Count, len(h.Counts), len(h.Bounds), n)
					continue
				}
				// Every sample between 5 and 20 ms: in the buckets bounded by 10 and 20 ms.
				for i, c := range h.Counts {
					inRange := i < len(h.Bounds) && (h.Bounds[i] == 1e7 || h.Bounds[i] == 2e7)
					if c > 0 && !inRange {
						t.Errorf("%s: %d samples in bucket %d (bounds %v)", field, c, i, h.Bounds)
					}
				}
				if mean := time.Duration(h.Sum / h.Count); mean < gap/2 || mean > 2*gap {
					t.Errorf("%s: mean %v, want about %v", field, mean, gap)
				}
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// dpLatencyPcap writes convs IPv4 TCP conversations, one after the other: a handshake whose
// SYN-ACK comes gap after the SYN, then datas data segments each acknowledged gap later.
func dpLatencyPcap(convs, datas int, gap time.Duration) []byte {
	var out []byte
	out = binary.LittleEndian.AppendUint32(out, 0xa1b23c4d) // nanosecond pcap
	out = binary.LittleEndian.AppendUint16(out, 2)
	out = binary.LittleEndian.AppendUint16(out, 4)
	out = append(out, make([]byte, 8)...)
	out = binary.LittleEndian.AppendUint32(out, 65535)
	out = binary.LittleEndian.AppendUint32(out, 1)
	at := time.Unix(1700000000, 0)
	add := func(frame []byte, after time.Duration) {
		at = at.Add(after)
		out = binary.LittleEndian.AppendUint32(out, uint32(at.Unix()))
		out = binary.LittleEndian.AppendUint32(out, uint32(at.Nanosecond()))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(frame)))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(frame)))
		out = append(out, frame...)
	}
	c, srv := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
	for i := range convs {
		port := uint16(50000 + i)
		cs, ss := uint32(1000*i+1), uint32(9000*i+7)
		add(dpTcp4(c, srv, port, 80, cs, 0, 0x02, 0), gap)
		add(dpTcp4(srv, c, 80, port, ss, cs+1, 0x12, 0), gap)
		cs, ss = cs+1, ss+1
		add(dpTcp4(c, srv, port, 80, cs, ss, 0x10, 0), time.Millisecond)
		for range datas {
			add(dpTcp4(c, srv, port, 80, cs, ss, 0x18, 100), gap)
			cs += 100
			add(dpTcp4(srv, c, 80, port, ss, cs, 0x10, 0), gap)
		}
	}
	return out
}

// dpTcp4 is an Ethernet/IPv4/TCP frame with a payload of n bytes (checksums: IPv4 only).
func dpTcp4(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8, n int) []byte {
	b := make([]byte, 14+20+20+n)
	copy(b, []byte{0x02, 0, 0, 0, 0xfe, 1, 0x02, 0, 0, 0, 0xfe, 2, 0x08, 0})
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(40+n))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	tc := ip[20:]
	binary.BigEndian.PutUint16(tc[0:], sport)
	binary.BigEndian.PutUint16(tc[2:], dport)
	binary.BigEndian.PutUint32(tc[4:], seq)
	binary.BigEndian.PutUint32(tc[8:], ack)
	tc[12], tc[13] = 5<<4, flags
	binary.BigEndian.PutUint16(tc[14:], 65535)
	return b
}
