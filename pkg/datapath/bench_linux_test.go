//go:build linux

package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The reference frames of `make bench-bpf`.
var benchFrames = []struct {
	name  string
	frame fb
}{
	{"ipv4-tcp-64", fb{proto: 6, sport: 40000, dport: 443, seq: 1000, ack: 1, flags: 0x18, payload: 10}},
	{"ipv4-udp-512-dscp46", fb{proto: 17, sport: 40000, dport: 4789, dscp: 46, payload: 512 - 42}},
	{"vlan-ipv4-tcp", fb{tags: [][2]uint16{{ether8021Q, 100}}, proto: 6, sport: 40000, dport: 443, seq: 1000, ack: 1, flags: 0x18, payload: 64}},
	{"ipv6-tcp-1500", fb{src: a6, dst: b6, proto: 6, sport: 40000, dport: 443, seq: 1000, ack: 1, flags: 0x18, payload: 1500 - 74}},
}

// Capture settings of benchJob.
type benchCapture int

const (
	noCapture       benchCapture = iota
	pcaplikeCapture              // as telegend captures for a pcaplike job (its kernel caps)
	uncappedCapture              // every sampled frame into the ring buffer, no cap
)

// benchJob is a job with every filter kind set so that f passes (or, with fail, fails at the
// last filter checked), every feature on and the given sampling rate.
func benchJob(f fb, rate uint32, capture benchCapture, fail bool) Job {
	src, dst := f.src, f.dst
	if !src.IsValid() {
		src, dst = a4, b4
	}
	bits := 24
	if src.Is6() {
		bits = 64
	}
	if fail {
		dst = netip.MustParseAddr("203.0.113.9")
		if src.Is6() {
			dst = netip.MustParseAddr("2001:db8:ff::9")
		}
	}
	j := Job{
		SampleRate: rate,
		Filter: Filter{
			IPProtos: []uint8{6, 17},
			SrcPorts: []PortRange{{1024, 65535}},
			DstPorts: []PortRange{{443, 443}, {4789, 4789}, {8000, 9000}},
			SrcCIDR:  netip.PrefixFrom(src, bits).Masked(),
			DstCIDR:  netip.PrefixFrom(dst, bits).Masked(),
			DSCPs:    []uint8{0, 46},
		},
	}
	if len(f.tags) > 0 {
		j.Filter.VLAN = f.tags[0][1]
	}
	switch capture {
	case pcaplikeCapture:
		j.Capture = &CaptureConfig{SnapLen: DefaultSnapLen, MaxPackets: PcaplikeMaxPackets, MaxBytes: PcaplikeMaxBytes, RatePPS: PcaplikeRatePPS}
	case uncappedCapture:
		j.Capture = &CaptureConfig{SnapLen: DefaultSnapLen}
	}
	return j
}

// emptyProg is the floor: a tc program that only returns TC_ACT_UNSPEC.
func emptyProg(b testing.TB) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "floor", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// peerProg loads PEER=obj.o:prog, another compiled tc program, with its compiled constants.
func peerProg(b testing.TB, peer string) *ebpf.Program {
	obj, name, ok := strings.Cut(peer, ":")
	if !ok {
		b.Fatalf("PEER=%q: want obj.o:prog", peer)
	}
	spec, err := ebpf.LoadCollectionSpec(obj)
	if err != nil {
		b.Fatalf("PEER: %v", err)
	}
	ps := spec.Programs[name]
	if ps == nil {
		b.Fatalf("PEER: %s has no program %q", obj, name)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		b.Fatalf("PEER: load %s: %v", name, err)
	}
	b.Cleanup(coll.Close)
	return coll.Programs[name]
}

// nsPerRun runs prog repeat times on data with BPF_PROG_TEST_RUN and returns ns per run two
// ways: the wall time of the call over repeat, and the kernel's own figure. The kernel rounds
// its figure down to a whole ns, which for a 14 ns program is up to 7 % off, and more off for
// the floor than for the bigger figures, so that ratios to the floor come out too high; the
// wall time also counts the call's set-up (a few µs in the milliseconds the call takes) and
// any preemption (which the median over rounds discards).
func nsPerRun(b testing.TB, prog *ebpf.Program, data []byte, repeat int) (wall, kernel float64) {
	start := time.Now()
	_, d, err := prog.Benchmark(data, repeat, nil)
	elapsed := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return float64(elapsed.Nanoseconds()) / float64(repeat), float64(d) / float64(time.Nanosecond)
}

// BenchmarkBPF is `make bench-bpf`: ns per frame of the job program on the reference frames,
// against the floor (an empty program), all in one run, interleaved round by round so that
// noise hits every variant alike; each figure is the median of the rounds. Run it with
// -benchtime 1x; BENCH_BPF_ROUNDS and BENCH_BPF_REPEAT tune it, PEER=obj.o:prog adds a program.
func BenchmarkBPF(b *testing.B) {
	rounds, repeat := 15, 200000
	fmt.Sscan(os.Getenv("BENCH_BPF_ROUNDS"), &rounds)
	fmt.Sscan(os.Getenv("BENCH_BPF_REPEAT"), &repeat)
	peer := os.Getenv("PEER")

	variants := []string{"floor", "full", "full-nocapture", "full-uncapped", "unsampled", "1-in-100", "filtered", "nofilter"}
	if peer != "" {
		variants = append(variants, "peer")
	}
	progs := make(map[string][]*ebpf.Program)
	floor := emptyProg(b)
	var peerP *ebpf.Program
	if peer != "" {
		peerP = peerProg(b, peer)
	}
	for _, bf := range benchFrames {
		f := bf.frame
		// Drain the capture rings as a pcaplike job's reader would.
		full := loadProg(b, benchJob(f, 1, pcaplikeCapture, false), HookIngress)
		uncapped := loadProg(b, benchJob(f, 1, uncappedCapture, false), HookIngress)
		for _, p := range []*progUnderTest{full, uncapped} {
			go func() {
				for range p.run.Samples() {
				}
			}()
		}
		progs["floor"] = append(progs["floor"], floor)
		progs["full"] = append(progs["full"], full.prog)
		progs["full-nocapture"] = append(progs["full-nocapture"], loadProg(b, benchJob(f, 1, noCapture, false), HookIngress).prog)
		progs["full-uncapped"] = append(progs["full-uncapped"], uncapped.prog)
		progs["unsampled"] = append(progs["unsampled"], loadProg(b, benchJob(f, 1<<24, noCapture, false), HookIngress).prog)
		progs["1-in-100"] = append(progs["1-in-100"], loadProg(b, benchJob(f, 100, noCapture, false), HookIngress).prog)
		progs["filtered"] = append(progs["filtered"], loadProg(b, benchJob(f, 1, noCapture, true), HookIngress).prog)
		progs["nofilter"] = append(progs["nofilter"], loadProg(b, Job{SampleRate: 1 << 24}, HookIngress).prog)
		if peerP != nil {
			progs["peer"] = append(progs["peer"], peerP)
		}
	}

	samples := make(map[string][][]float64) // variant -> frame -> rounds: wall ns per run
	kernel := make(map[string][][]float64)  // the kernel's whole-ns figures
	for _, v := range variants {
		samples[v] = make([][]float64, len(benchFrames))
		kernel[v] = make([][]float64, len(benchFrames))
	}
	b.ResetTimer()
	for range rounds {
		for i, bf := range benchFrames {
			data := bf.frame.build()
			for _, v := range variants {
				wall, k := nsPerRun(b, progs[v][i], data, repeat)
				samples[v][i] = append(samples[v][i], wall)
				kernel[v][i] = append(kernel[v][i], k)
			}
		}
	}
	b.StopTimer()

	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.SortFunc(s, cmp.Compare)
		return s[len(s)/2]
	}
	mean := make(map[string]float64)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-28s", "ns/frame")
	for _, v := range variants {
		fmt.Fprintf(&sb, " %14s", v)
	}
	sb.WriteString("\n")
	for i, bf := range benchFrames {
		fmt.Fprintf(&sb, "%-28s", fmt.Sprintf("%s (%dB)", bf.name, len(bf.frame.build())))
		for _, v := range variants {
			m := med(samples[v][i])
			mean[v] += m / float64(len(benchFrames))
			fmt.Fprintf(&sb, " %14.1f", m)
		}
		sb.WriteString("\n")
	}
	kmean := make(map[string]float64)
	fmt.Fprintf(&sb, "%-28s", "mean")
	for _, v := range variants {
		fmt.Fprintf(&sb, " %14.1f", mean[v])
		b.ReportMetric(mean[v], v+"-ns")
		for i := range benchFrames {
			kmean[v] += med(kernel[v][i]) / float64(len(benchFrames))
		}
	}
	sb.WriteString("\n")
	fmt.Fprintf(&sb, "%-28s", "mean, kernel's whole ns")
	for _, v := range variants {
		fmt.Fprintf(&sb, " %14.1f", kmean[v])
	}
	sb.WriteString("\n")
	ratio := func(m map[string]float64, a, c string) string { return fmt.Sprintf("%s/%s=%.2f", a, c, m[a]/m[c]) }
	r := func(a, c string) string { return ratio(mean, a, c) }
	rk := func(a, c string) string { return ratio(kmean, a, c) }
	last := strings.Join([]string{r("full", "floor"), r("unsampled", "floor"), r("filtered", "floor")}, " ")
	if peerP != nil {
		last += " " + r("full", "peer")
	}
	fmt.Fprintf(&sb, "rounds %d × %d runs per figure (median of rounds); ns per run = wall time of the BPF_PROG_TEST_RUN call / runs; ratios of the means over the frames\n", rounds, repeat)
	fmt.Fprintf(&sb, "also: %s %s %s\n", r("full-nocapture", "floor"), r("full-uncapped", "floor"), r("1-in-100", "floor"))
	fmt.Fprintf(&sb, "with the kernel's own figures (rounded down to whole ns, which raises every ratio to the floor): %s %s %s\n",
		rk("full", "floor"), rk("unsampled", "floor"), rk("filtered", "floor"))
	sb.WriteString(last + "\n")
	fmt.Print(sb.String())
}
