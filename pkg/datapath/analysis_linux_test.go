//go:build linux

package datapath

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// seg is a TCP segment from endpoint a (a4:40000) to b (b4:80), or back with rev.
func seg(rev bool, seq, ack uint32, flags uint8, payload int) []byte {
	f := fb{proto: 6, sport: 40000, dport: 80, seq: seq, ack: ack, flags: flags, payload: payload}
	if rev {
		f.src, f.dst, f.sport, f.dport = b4, a4, 80, 40000
	}
	return f.build()
}

const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
)

// TestTCPRetrans: a segment whose sequence space starts inside what its direction already sent
// is a retransmission (SYN and FIN take one number each); keep-alives, RSTs and pure ACKs
// are not.
func TestTCPRetrans(t *testing.T) {
	p := loadProg(t, Job{}, HookIngress)
	for _, s := range []struct {
		frame   []byte
		retrans bool
	}{
		{seg(false, 1000, 0, fSYN, 0), false},
		{seg(false, 1000, 0, fSYN, 0), true}, // SYN again
		{seg(true, 7000, 1001, fSYN|fACK, 0), false},
		{seg(false, 1001, 7001, fACK, 0), false}, // pure ACK
		{seg(false, 1001, 7001, fACK|fPSH, 100), false},
		{seg(false, 1101, 7001, fACK|fPSH, 100), false},
		{seg(true, 7001, 1201, fACK|fPSH, 50), false},  // the other direction is its own
		{seg(false, 1001, 7051, fACK|fPSH, 100), true}, // all of it seen
		{seg(false, 1050, 7051, fACK|fPSH, 200), true}, // starts inside, ends beyond
		{seg(false, 1249, 7051, fACK, 1), false},       // keep-alive: one byte below the end
		{seg(false, 1249, 7051, fACK, 0), false},       // keep-alive without the byte
		{seg(false, 1000, 7051, fRST, 0), false},       // RST
		{seg(false, 1250, 7051, fFIN|fACK, 0), false},  // FIN
		{seg(false, 1250, 7051, fFIN|fACK, 0), true},   // FIN again
		{seg(false, 1251, 7051, fACK, 0), false},
		{seg(true, 7001, 1251, fACK|fPSH, 50), true}, // the other direction's first data again
	} {
		before := p.stats().TcpRetrans
		p.send(s.frame)
		if got := p.stats().TcpRetrans - before; got != b2u(s.retrans) {
			t.Errorf("segment %x: retransmissions +%d, want %v", s.frame[38:42], got, s.retrans)
		}
	}
	snap := p.snap(true)
	if snap.Errors.TCPRetrans != 5 {
		t.Errorf("tcp_retrans %d, want 5", snap.Errors.TCPRetrans)
	}
	var flags []uint8
	for _, f := range snap.TopFlows {
		flags = append(flags, f.TCPFlags)
	}
	if len(flags) != 2 || !slices.Contains(flags, fFIN|fSYN|fRST|fPSH|fACK) || !slices.Contains(flags, fSYN|fPSH|fACK) {
		t.Errorf("TCP flags of the two directions %#x", flags)
	}
}

// TestLatency measures handshakes (network.latency: SYN to SYN-ACK) and data to ACK (tcp.rtt)
// with real waits between the segments, and leaves out what Karn's rule makes ambiguous.
func TestLatency(t *testing.T) {
	const wait = 3 * time.Millisecond
	for _, rate := range []uint32{1, 1 << 24} {
		p := loadProg(t, Job{SampleRate: rate}, HookIngress)
		p.send(seg(false, 5000, 0, fSYN, 0))
		time.Sleep(wait)
		p.send(seg(true, 9000, 5001, fSYN|fACK, 0))
		p.send(seg(false, 5001, 9001, fACK, 0))
		p.send(seg(false, 5001, 9001, fACK|fPSH, 100))
		time.Sleep(wait)
		p.send(seg(true, 9001, 5101, fACK, 0))
		p.send(seg(false, 5101, 9001, fACK|fPSH, 100))
		p.send(seg(true, 9001, 5150, fACK, 0)) // acknowledges part of it
		time.Sleep(wait)
		p.send(seg(true, 9001, 5201, fACK, 0))
		p.send(seg(false, 5201, 9001, fACK|fPSH, 100))
		p.send(seg(false, 5201, 9001, fACK|fPSH, 100)) // retransmitted: no sample
		p.send(seg(true, 9001, 5301, fACK, 0))
		// A retransmitted SYN makes its handshake ambiguous.
		p.send(fb{proto: 6, sport: 41000, dport: 80, seq: 1, flags: fSYN}.build())
		p.send(fb{proto: 6, sport: 41000, dport: 80, seq: 1, flags: fSYN}.build())
		p.send(fb{src: b4, dst: a4, proto: 6, sport: 80, dport: 41000, seq: 77, ack: 2, flags: fSYN | fACK}.build())

		s := p.snap(true)
		net, rtt := s.Latency[MetricNetworkLatency], s.Latency[MetricTCPRTT]
		checkHist(t, "network.latency", net, 1, wait)
		if rate == 1 {
			checkHist(t, "tcp.rtt", rtt, 2, wait)
		} else if rtt.Count != 0 || len(s.TopFlows) != 0 || s.FlowsSeen != 2 {
			// Unsampled, only the handshakes reach the flow table, counting nothing.
			t.Errorf("rate %d: tcp.rtt %d samples, %d flows, %d seen; want 0, 0, 2", rate, rtt.Count, len(s.TopFlows), s.FlowsSeen)
		}
	}
}

// checkHist checks a histogram of n samples, each at least min and (on a loaded machine)
// below a second, and that its buckets agree with its bounds.
func checkHist(t *testing.T, name string, h aggregate.Histogram, n uint64, min time.Duration) {
	t.Helper()
	if !slices.Equal(h.Bounds, LatencyBounds()) || len(h.Counts) != len(h.Bounds)+1 {
		t.Fatalf("%s: bounds %v, %d counts", name, h.Bounds, len(h.Counts))
	}
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if h.Count != n || total != n {
		t.Fatalf("%s: %d samples (buckets %d), want %d: %+v", name, h.Count, total, n, h)
	}
	if h.Sum < n*uint64(min) || h.Sum > n*uint64(time.Second) {
		t.Errorf("%s: sum %v for %d samples of at least %v", name, time.Duration(h.Sum), n, min)
	}
	// Every sample is at least min: nothing in the buckets below it.
	for i, b := range h.Bounds {
		if b < uint64(min) && h.Counts[i] != 0 {
			t.Errorf("%s: %d samples <= %v", name, h.Counts[i], time.Duration(b))
		}
	}
}

// TestHistogramBuckets checks the program's branch-free bucket search (hist_add, mirrored in
// bucketOf) against the plain definition, with the bounds the program is given: a value goes
// to the first bucket whose bound is not below it, values above every bound to the last.
// TestLatency checks the kernel's placement of real samples.
func TestHistogramBuckets(t *testing.T) {
	bounds := Job{}.consts(Job{}.settings())[telegenVarCfgLatBounds].([latSlots]uint64)
	vals := []uint64{0, 1, 999, 1000, 1001, 2000, 2001, 1e6, 5e9, 1e10, 1e10 + 1, 1 << 40, math.MaxUint64}
	for _, v := range vals {
		want := len(latencyBounds)
		for i, b := range latencyBounds {
			if v <= b {
				want = i
				break
			}
		}
		if got := bucketOf(bounds, v); got != want {
			t.Errorf("bucket of %d = %d, want %d", v, got, want)
		}
	}
}

// bucketOf is the program's branch-free search (hist_add), in Go.
func bucketOf(bounds [latSlots]uint64, v uint64) int {
	v = min(v, 1<<60)
	lo := uint64(0)
	for step := uint64(latSlots / 2); step > 0; step >>= 1 {
		lo += step * ((bounds[(lo+step-1)&(latSlots-1)] - v) >> 63)
	}
	return int(lo)
}

// TestChecksum: the IPv4 header checksum is verified with and without options.
func TestChecksum(t *testing.T) {
	p := loadProg(t, Job{}, HookIngress)
	p.send(
		fb{proto: 17}.build(),
		fb{proto: 17, badChecksum: true}.build(),
		fb{proto: 17, ipOpts: 8}.build(),
		fb{proto: 17, ipOpts: 40, badChecksum: true}.build(),
		fb{src: a6, dst: b6, proto: 17}.build(),
		fb{proto: 17, badChecksum: true, badVersion: true}.build(), // malformed: not verified
	)
	if s := p.snap(false); s.Errors.L3Checksum != 2 || s.Errors.Malformed != 1 {
		t.Errorf("l3_checksum %d malformed %d, want 2 and 1", s.Errors.L3Checksum, s.Errors.Malformed)
	}
}

// TestSampling: at 1 in 100, totals stay exact and the sampled figures, scaled, fall within
// 3σ of the truth.
func TestSampling(t *testing.T) {
	const n, rate = 200000, 100
	p := loadProg(t, Job{SampleRate: rate}, HookIngress)
	frame := fb{proto: 17, sport: 1, dport: 2, badChecksum: true, payload: 10}.build()
	p.sendCtx(frame, skbCtx{}, n)
	s := p.snap(true)
	if s.Ingress.Packets != n || s.Ingress.Bytes != n*uint64(len(frame)) || s.SampleRate != rate {
		t.Fatalf("totals %+v rate %d, want %d frames exactly", s.Ingress, s.SampleRate, n)
	}
	sigma := math.Sqrt(n * (1.0 / rate) * (1 - 1.0/rate)) // binomial, in sampled frames
	within := func(what string, est, truth uint64) {
		t.Helper()
		dev := math.Abs(float64(est)-float64(truth)) / rate
		t.Logf("%s: estimate %d, truth %d (%.1fσ)", what, est, truth, dev/sigma)
		if dev > 3*sigma {
			t.Errorf("%s: estimate %d is %.1fσ from %d", what, est, dev/sigma, truth)
		}
	}
	within("sampled", s.Sampled*rate, n)
	within("l3_checksum", s.Errors.L3Checksum, n)
	if len(s.TopFlows) != 1 {
		t.Fatalf("flows %+v", s.TopFlows)
	}
	within("flow packets", s.TopFlows[0].Packets, n)
	if s.TopFlows[0].Bytes != s.TopFlows[0].Packets*uint64(len(frame)) {
		t.Errorf("flow bytes %d for %d packets of %d", s.TopFlows[0].Bytes, s.TopFlows[0].Packets, len(frame))
	}
	if est := s.Estimated(); len(est) == 0 {
		t.Error("Estimated() is empty at 1 in 100")
	}
}

// TestGapTable: the gaps between sampled frames have mean n exactly and, like the gaps of
// independent 1-in-n draws, a variance near n(n-1).
func TestGapTable(t *testing.T) {
	for _, n := range []uint32{2, 3, 7, 100, 1000, 1 << 20} {
		g := gapTable(n)
		var sum, sq float64
		for _, v := range g {
			if v < 1 {
				t.Fatalf("n=%d: gap %d", n, v)
			}
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		mean := sum / gapSlots
		if mean != float64(n) {
			t.Errorf("n=%d: mean %v", n, mean)
		}
		variance := sq/gapSlots - mean*mean
		if want := float64(n) * float64(n-1); math.Abs(variance-want) > 0.2*want {
			t.Errorf("n=%d: variance %.0f, want about %.0f", n, variance, want)
		}
	}
}

// TestFlowTable: more conversations than the table holds are counted as seen, the overflow as
// evicted, and the top-K is cut to K.
func TestFlowTable(t *testing.T) {
	p := loadProg(t, Job{TopK: 1}, HookIngress)
	const flows = 3000
	for i := range flows {
		p.send(fb{proto: 17, sport: uint16(10000 + i), dport: 53, payload: i % 7}.build())
	}
	s := p.snap(true)
	_, present, err := p.run.readFlows()
	if err != nil {
		t.Fatal(err)
	}
	if s.FlowsSeen != flows || s.FlowsEvicted != flows-present || present > MinFlowTable || s.FlowsEvicted < flows-MinFlowTable {
		t.Errorf("seen %d evicted %d present %d, table %d", s.FlowsSeen, s.FlowsEvicted, present, MinFlowTable)
	}
	if len(s.TopFlows) != 1 || s.TopFlows[0].Bytes != uint64(14+20+8+6) {
		t.Errorf("top flows %+v, want the one largest", s.TopFlows)
	}
}

// TestFlowTimes: a flow's first and last seen are the coarse clock (one tick, at most 10 ms
// here) of its first and last frame, as read through the per-CPU copy the program keeps per
// tick: frames 300 ms apart are 300 ms apart in the flow, within a tick or two.
func TestFlowTimes(t *testing.T) {
	p := loadProg(t, Job{}, HookIngress)
	frame := fb{proto: 17, sport: 5000, dport: 53, payload: 10}.build()
	const tick = 10 * time.Millisecond // CONFIG_HZ 100 or more
	before := time.Now()
	p.send(frame)
	mid := time.Now()
	time.Sleep(300 * time.Millisecond)
	p.send(frame, frame)
	after := time.Now()
	s := p.snap(true)
	if len(s.TopFlows) != 1 {
		t.Fatalf("flows %+v, want one", s.TopFlows)
	}
	f := s.TopFlows[0]
	if f.FirstSeen.Before(before.Add(-2*tick)) || f.FirstSeen.After(mid.Add(tick)) {
		t.Errorf("first seen %v, want between %v and %v (± a tick)", f.FirstSeen, before, mid)
	}
	if f.LastSeen.Before(mid.Add(300*time.Millisecond-2*tick)) || f.LastSeen.After(after.Add(tick)) {
		t.Errorf("last seen %v, want 300 ms after %v and before %v (± a tick)", f.LastSeen, mid, after)
	}
}

// TestFlowSpread: conversations that differ in one field only (the last octet of an
// address, a port, the VLAN) spread over the sets of the table: 3 × 200 of them fit a table
// of 1024 without an eviction (a hash that ignored the field would put them in one set).
func TestFlowSpread(t *testing.T) {
	for _, fam := range []struct {
		name string
		addr func(i int) netip.Addr
	}{
		{"ipv4", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }},
		{"ipv6", func(i int) netip.Addr {
			a := a6.As16()
			a[15] = byte(i)
			return netip.AddrFrom16(a)
		}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			p := loadProg(t, Job{TopK: 1}, HookIngress) // the smallest table: 1024
			src := a4
			if fam.name == "ipv6" {
				src = a6
			}
			for i := range 200 {
				p.send(fb{src: src, dst: fam.addr(i + 1), proto: 17, sport: 1000, dport: 53}.build())
				p.send(fb{src: src, dst: fam.addr(250), proto: 17, sport: uint16(2000 + i), dport: 53}.build())
				p.send(fb{src: src, dst: fam.addr(251), proto: 17, sport: 1000, dport: 53, tags: [][2]uint16{{ether8021Q, uint16(100 + i)}}}.build())
			}
			s := p.snap(true)
			if s.FlowsSeen != 600 || s.FlowsEvicted != 0 {
				t.Errorf("seen %d evicted %d, want 600 and none", s.FlowsSeen, s.FlowsEvicted)
			}
		})
	}
}

// erspanFrame wraps inner in Ethernet/IPv4/GRE and an ERSPAN header of version 0 (type I),
// 1 (type II) or 2 (type III, with platform sub-header when sub).
func erspanFrame(version int, session uint16, inner []byte, sub bool) []byte {
	var gre []byte
	switch version {
	case 0:
		gre = []byte{0, 0, 0x88, 0xbe}
	case 1:
		gre = []byte{0x10, 0, 0x88, 0xbe, 0, 0, 0, 1} // S: a sequence number follows
		h := make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], 1<<12)
		binary.BigEndian.PutUint16(h[2:], session&0x3ff)
		gre = append(gre, h...)
	case 2:
		gre = []byte{0x10, 0, 0x22, 0xeb, 0, 0, 0, 1}
		h := make([]byte, 12)
		binary.BigEndian.PutUint16(h[0:], 2<<12)
		binary.BigEndian.PutUint16(h[2:], session&0x3ff)
		if sub {
			h[11] = 1
			h = append(h, make([]byte, 8)...)
		}
		gre = append(gre, h...)
	}
	outer := fb{proto: 47, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2")}.build()
	outer = outer[:14+20]
	payload := append(gre, inner...)
	binary.BigEndian.PutUint16(outer[16:], uint16(20+len(payload)))
	outer[24], outer[25] = 0, 0
	binary.BigEndian.PutUint16(outer[24:], ipChecksum(outer[14:34]))
	return append(outer, payload...)
}

// TestERSPAN: an ERSPAN job analyses the mirrored frames of its session and ignores the rest.
func TestERSPAN(t *testing.T) {
	inner := fb{tags: [][2]uint16{{ether8021Q, 30}}, proto: 6, sport: 40000, dport: 80, payload: 20}.build()
	other := fb{proto: 17, sport: 1, dport: 2}.build()
	frames := []struct {
		frame []byte
		ours  []int // sessions (-1: any) that take it
	}{
		{erspanFrame(1, 7, inner, false), []int{7, -1}},
		{erspanFrame(1, 8, inner, false), []int{-1}},
		{erspanFrame(2, 7, inner, true), []int{7, -1}},
		{erspanFrame(2, 7, inner, false), []int{7, -1}},
		{erspanFrame(0, 0, inner, false), []int{-1}},
		{other, nil},
	}
	for _, session := range []int{7, -1} {
		p := loadProg(t, Job{ERSPAN: &ERSPAN{SessionID: session}}, HookIngress)
		var want uint64
		for _, f := range frames {
			p.send(f.frame)
			if slices.Contains(f.ours, session) {
				want++
			}
		}
		s := p.snap(true)
		if s.Ingress.Packets != want || s.Ingress.Bytes != want*uint64(len(inner)) || s.Filtered != uint64(len(frames))-want {
			t.Errorf("session %d: %+v filtered %d, want %d inner frames of %d bytes", session, s.Ingress, s.Filtered, want, len(inner))
		}
		if len(s.TopFlows) != 1 || s.TopFlows[0].Key.VLAN != 30 || s.TopFlows[0].Key.DstPort != 80 || s.TopFlows[0].Packets != want {
			t.Errorf("session %d: flows %+v, want the inner TCP flow on VLAN 30", session, s.TopFlows)
		}
	}
}

// TestCapture: a pcaplike job hands over the first SnapLen bytes of each sampled frame, within
// its packet, byte and rate caps, and counts what the ring buffer could not hold.
func TestCapture(t *testing.T) {
	frames := [][]byte{
		fb{proto: 17, sport: 1, dport: 2, payload: 200}.build(),
		fb{proto: 6, sport: 1, dport: 2}.build(),
		arpFrame(),
	}
	t.Run("samples", func(t *testing.T) {
		p := loadProg(t, Job{Capture: &CaptureConfig{SnapLen: 60}}, HookEgress)
		began := time.Now()
		p.send(frames...)
		for i, f := range frames {
			var s Sample
			select {
			case s = <-p.run.Samples():
			case <-time.After(5 * time.Second):
				t.Fatal("no sample")
			}
			want := f[:min(len(f), 64)] // snap length rounded up to 8
			if !bytes.Equal(s.Data, want) || s.WireLen != uint32(len(f)) || s.Direction != HookEgress || s.Ifindex == 0 {
				t.Errorf("sample %d: %d bytes of %d on if %d %s, want %d of %d", i, len(s.Data), s.WireLen, s.Ifindex, s.Direction, len(want), len(f))
			}
			if s.Time.Before(began.Add(-time.Second)) || s.Time.After(time.Now().Add(time.Second)) {
				t.Errorf("sample %d at %v, sent at %v", i, s.Time, began)
			}
		}
		if c := p.snap(false).Capture; c == nil || *c != (aggregate.CaptureCounts{Samples: 3}) {
			t.Errorf("capture counts %+v", c)
		}
	})
	for _, c := range []struct {
		name    string
		cfg     CaptureConfig
		samples uint64
	}{
		{"packet cap", CaptureConfig{SnapLen: 64, MaxPackets: 5}, 5},
		{"byte cap", CaptureConfig{SnapLen: 64, MaxBytes: 200}, 3},
		{"rate cap", CaptureConfig{SnapLen: 64, RatePPS: 4}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := loadProg(t, Job{Capture: &c.cfg}, HookIngress)
			go func() {
				for range p.run.Samples() {
				}
			}()
			for range 10 {
				p.send(frames[0])
			}
			if got := p.snap(false).Capture; *got != (aggregate.CaptureCounts{Samples: c.samples, Capped: 10 - c.samples}) {
				t.Errorf("capture counts %+v, want %d samples, %d capped", got, c.samples, 10-c.samples)
			}
		})
	}
	t.Run("rate cap reopens", func(t *testing.T) {
		// The window closes for a second, on every CPU that saw it closed, then reopens.
		p := loadProg(t, Job{Capture: &CaptureConfig{SnapLen: 64, RatePPS: 4}}, HookIngress)
		go func() {
			for range p.run.Samples() {
			}
		}()
		for round := 1; round <= 2; round++ {
			for range 10 {
				p.send(frames[0])
			}
			want := aggregate.CaptureCounts{Samples: 4 * uint64(round), Capped: 6 * uint64(round)}
			if got := p.snap(false).Capture; *got != want {
				t.Fatalf("second %d: capture counts %+v, want %+v", round, got, want)
			}
			time.Sleep(1100 * time.Millisecond)
		}
	})
	t.Run("ring full", func(t *testing.T) {
		p := loadProg(t, Job{Capture: &CaptureConfig{SnapLen: 64}}, HookIngress)
		const n = 5000
		p.sendCtx(frames[0], skbCtx{}, n) // nobody reads: the ring buffer fills
		c := p.snap(false).Capture
		if c.Samples+c.Lost != n || c.Lost == 0 {
			t.Errorf("capture counts %+v, want %d in all, some lost", c, n)
		}
		var got uint64
		for range p.run.Samples() {
			if got++; got == c.Samples {
				break
			}
		}
		go func() { // drain until Close
			for range p.run.Samples() {
			}
		}()
	})
}
