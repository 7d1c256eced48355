package e2e

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// BenchmarkDataPlaneCPU measures what a running job costs the switch's CPU per packet, against
// tcpdump -w /dev/null on the same traffic in the same run. `make bench-e2e`
// (scripts/bench-e2e.sh) runs it with a daemon built without -race and records the figures in
// docs/BENCHMARKS.md.
//
// tcpreplay --topspeed sends a fixed number of frames into vh-Ethernet16, so they arrive on
// Ethernet16's receive path (veth: in the sender's context, or ksoftirqd's). Each phase counts
// the CPU time of everything involved: a cgroup holding the sender, telegend, redis-server and
// tcpdump (cpu.stat usage, exact ns accounting, softirq work done in their context included),
// plus every ksoftirqd. Phases, interleaved and rotated per round to spread machine noise:
//
//	base     nothing attached (telegend idle, no job)
//	telegen  a full job: filters that match every frame, sample_rate 1, flows, both directions
//
// The traffic is trafgen's "flows" mix (TCP and UDP over IPv4 and IPv6, 1024 flows of Zipf-like
// sizes, DSCP marks): every frame has ports, so port filters match all of it, and a job's
// protocol, port and DSCP filters are all on without filtering anything out.
//
//	tcpdump  tcpdump -i Ethernet16 -w /dev/null
//	empty    an empty program on the same hooks the job uses (TCX ingress and egress): what
//	         merely having a program on the path costs, whatever it does
//	telegen-1in100  the same job at sample_rate 100, DESIGN's default: for reference, what a
//	         job costs whose frames are mostly counted, not analysed (the target is the full
//	         job's)
//
// A mode's extra cost is its ns/packet less the same round's base ns/packet; the figure
// reported is the median over rounds.
//
// Then, with the kernel's BPF run-time statistics on (programCosts), a few more rounds read
// what the ingress program itself takes per frame in this traffic: the job's, the same job at
// 1-in-100, and the empty program's. The CPU figures cannot be split that finely (a round's
// figure swings by tens of ns); these can, to about a nanosecond, which is what tells the hook's share
// of a job's cost from the program's, and parsing and counting from the sampled analysis.
func BenchmarkDataPlaneCPU(b *testing.B) {
	testenv.RequireTool(b, "tcpdump")
	if os.Getenv("TELEGEN_E2E_RACE") != "0" {
		b.Fatal("run with TELEGEN_E2E_RACE=0 (scripts/bench-e2e.sh does): a -race telegend would inflate its cost")
	}
	packets := envInt(b, "BENCH_E2E_PACKETS", 2_000_000)
	rounds := envInt(b, "BENCH_E2E_ROUNDS", 15)
	const pcapFrames = 10_000
	loops := max(1, (packets+pcapFrames-1)/pcapFrames)

	for b.Loop() {
		s := newSwitch(b, "auto", "Ethernet16")
		pcap := filepath.Join(b.TempDir(), "mix.pcap")
		run(b, trafgenBin, "-o", pcap, "-n", strconv.Itoa(pcapFrames), "-mix", "flows", "-flows", "1024", "-seed", "7")
		cg := newCPUGroup(b)
		d := s.startDaemon(productionFlags...)
		cg.add(d.cmd.Process.Pid) // nsenter execs telegend: same pid
		rpid := redisPID(s.redis.Dir)
		if rpid > 0 {
			cg.add(rpid) // live stats and results are Redis writes: part of a job's cost
		}
		time.Sleep(time.Second)

		ph := &phases{b: b, s: s, cg: cg, pcap: pcap, loops: loops, daemonPID: d.cmd.Process.Pid, redisPID: rpid}
		ph.measure("base", -1) // warm-up: page cache, neighbour state, CPU frequency
		ns := map[string][]float64{}
		var drops, matched, userNs []string
		modes := []string{"base", "telegen", "tcpdump", "empty", "telegen-1in100"}
		for r := range rounds {
			line := fmt.Sprintf("round %d:", r+1)
			for i := range modes {
				m := modes[(i+r)%len(modes)]
				res := ph.measure(m, r)
				ns[m] = append(ns[m], res.nsPerPacket())
				line += fmt.Sprintf(" %s %.0f ns/pkt (%d pkts, %.2f Mpps)", m, res.nsPerPacket(), res.pkts, res.mpps())
				switch m {
				case "tcpdump":
					drops = append(drops, res.note)
				case "telegen":
					matched = append(matched, res.note)
					pk := float64(max(res.pkts, 1))
					userNs = append(userNs, fmt.Sprintf("%.1f+%.1f", float64(res.daemonNs)/pk, float64(res.redisNs)/pk))
				}
			}
			fmt.Println("bench-e2e " + line) // stdout: go test cuts a benchmark's long log
		}
		prog := ph.programCosts(envInt(b, "BENCH_E2E_STATS_ROUNDS", 5))
		d.stop(b)

		var tg, td, em, tg100 []float64
		for r := range rounds {
			tg = append(tg, ns["telegen"][r]-ns["base"][r])
			td = append(td, ns["tcpdump"][r]-ns["base"][r])
			em = append(em, ns["empty"][r]-ns["base"][r])
			tg100 = append(tg100, ns["telegen-1in100"][r]-ns["base"][r])
		}
		base, tgX, tdX, emX, tg100X := median(ns["base"]), median(tg), median(td), median(em), median(tg100)
		ratio := tgX / tdX
		b.ReportMetric(base, "base-ns/pkt")
		b.ReportMetric(tgX, "telegen-extra-ns/pkt")
		b.ReportMetric(tdX, "tcpdump-extra-ns/pkt")
		b.ReportMetric(emX, "empty-extra-ns/pkt")
		b.ReportMetric(tg100X, "telegen-1in100-extra-ns/pkt")
		b.ReportMetric(ratio, "ratio")
		fmt.Printf("bench-e2e detail: %d rounds of %d frames (trafgen mix flows, 1024 flows, tcpreplay --topspeed); base %.0f ns/pkt; "+
			"telegen extra per round %s; tcpdump extra per round %s; empty program extra per round %s; job at 1-in-100 extra per round %s; of the telegen phase, telegend+redis-server ns/packet per round %s; job counted %s; tcpdump kernel drops %s\n",
			rounds, loops*pcapFrames, base, fmtList(tg), fmtList(td), fmtList(em), fmtList(tg100), strings.Join(userNs, " "), strings.Join(matched, " "), strings.Join(drops, " "))
		fmt.Printf("bench-e2e program ns/frame (bpf_stats): telegen=%.1f telegen-1in100=%.1f empty=%.1f\n",
			prog["telegen"], prog["telegen-1in100"], prog["empty"])
		fmt.Printf("bench-e2e empty_extra_ns=%.0f\n", emX)
		fmt.Printf("bench-e2e telegen_1in100_extra_ns=%.0f telegen_1in100_ratio=%.3f\n", tg100X, tg100X/tdX)
		fmt.Printf("bench-e2e telegen_extra_ns=%.0f tcpdump_extra_ns=%.0f ratio=%.3f\n", tgX, tdX, ratio)
	}
}

// productionFlags run telegend as a switch would (0: the daemon's own defaults, 1 s live
// stats among them), not with the tests' short intervals and debug logs: its share of a job's
// cost is part of the figure.
var productionFlags = []string{"--stats-interval", "0", "--resync-interval", "0", "--sweep-interval", "0", "--log-level", "info"}

// fullJob is a job with every feature on and filters every frame of the mix matches (no VLAN or
// CIDR filter: the mix has untagged frames of both address families).
func fullJob() []string {
	dscps := make([]string, 64)
	for i := range dscps {
		dscps[i] = strconv.Itoa(i)
	}
	return []string{"port", "Ethernet16", "span_method", "direct", "direction", "both",
		"sample_rate", "1", "duration_sec", "3600", "result_detail", "flows",
		"ip_proto@", "tcp,udp,sctp", "l4_sport@", "0-65535", "l4_dport@", "0-65535",
		"dscp@", strings.Join(dscps, ",")}
}

type phases struct {
	b                   *testing.B
	s                   *vswitch
	cg                  *cpuGroup
	pcap                string
	loops               int
	daemonPID, redisPID int      // their share of a phase's CPU is reported apart
	progStats           *progRun // when set, measure fills in the ingress programs' run statistics
}

type phaseResult struct {
	cpuNs             uint64
	daemonNs, redisNs uint64 // telegend's and redis-server's part of cpuNs
	pkts              uint64
	wall              time.Duration
	note              string
}

func (r phaseResult) nsPerPacket() float64 { return float64(r.cpuNs) / float64(max(r.pkts, 1)) }
func (r phaseResult) mpps() float64        { return float64(r.pkts) / r.wall.Seconds() / 1e6 }

// measure runs one phase: set the mode up, replay the traffic between two CPU readings, tear
// the mode down.
func (p *phases) measure(mode string, round int) phaseResult {
	b := p.b
	var teardown func(pkts uint64) string
	switch mode {
	case "base":
		teardown = func(uint64) string { return "" }
	case "telegen", "telegen-1in100":
		id := fmt.Sprintf("bench-%d", round)
		job := fullJob()
		if mode == "telegen-1in100" {
			id = fmt.Sprintf("bench-1in100-%d", round)
			job[slices.Index(job, "sample_rate")+1] = "100"
		}
		p.s.putJob(id, job...)
		p.s.waitStatus(id, "running", 10*time.Second)
		teardown = func(pkts uint64) string {
			// The live record catches up within a stats interval.
			var n uint64
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if n, _ = strconv.ParseUint(p.s.job(id)["packets_total"], 10, 64); n >= pkts {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			p.s.delJob(id)
			p.s.waitStatus(id, "stopped", 10*time.Second)
			if n == 0 {
				b.Fatalf("job %s counted nothing: the program was not on the path", id)
			}
			if n != pkts {
				b.Logf("job %s counted %d of %d frames: its filters did not match all of them", id, n, pkts)
			}
			return strconv.FormatUint(n, 10)
		}
	case "tcpdump":
		teardown = p.startTcpdump()
	case "empty":
		teardown = p.attachEmpty()
	}
	time.Sleep(200 * time.Millisecond)
	var progNs0, progRuns0 uint64
	if p.progStats != nil {
		progNs0, progRuns0 = p.ingressProgStats()
	}
	d0, r0 := procCPU(p.daemonPID), procCPU(p.redisPID)
	c0, p0, t0 := p.cpu(), p.rxPackets(), time.Now()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+p.s.hostNS, "--",
		"tcpreplay", "-q", "--topspeed", "-K", "--loop="+strconv.Itoa(p.loops), "-i", "vh-Ethernet16", p.pcap)
	if out, err := p.cg.command(cmd).CombinedOutput(); err != nil {
		b.Fatalf("tcpreplay: %v\n%s", err, out)
	}
	wall := time.Since(t0)
	p.settle()
	if p.progStats != nil {
		ns, runs := p.ingressProgStats()
		p.progStats.ns, p.progStats.runs = ns-progNs0, runs-progRuns0
	}
	res := phaseResult{cpuNs: p.cpu() - c0, pkts: p.rxPackets() - p0, wall: wall}
	res.daemonNs, res.redisNs = procCPU(p.daemonPID)-d0, procCPU(p.redisPID)-r0
	res.note = teardown(res.pkts)
	if mode == "telegen" {
		res.note = fmt.Sprintf("%s/%d", res.note, res.pkts)
	}
	return res
}

// programCosts measures what the programs on Ethernet16's ingress hook cost per frame in this
// traffic, by the kernel's BPF run-time statistics: the job's at sample_rate 1 (telegen) and
// 1-in-100 (its frames mostly counted, not analysed), and the empty program. Statistics put a
// clock read on each side of every run, which every figure includes alike, so these phases
// are apart from the CPU ones. Medians over rounds, interleaved.
func (p *phases) programCosts(rounds int) map[string]float64 {
	b := p.b
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	must(b, err)
	defer stats.Close()
	modes := []string{"telegen", "telegen-1in100", "empty"}
	per := map[string][]float64{}
	for r := range rounds {
		for i := range modes {
			m := modes[(i+r)%len(modes)]
			p.progStats = &progRun{}
			p.measure(m, 1000+r)
			if p.progStats.runs == 0 {
				b.Fatalf("%s: no program ran on Ethernet16's TCX ingress", m)
			}
			per[m] = append(per[m], float64(p.progStats.ns)/float64(p.progStats.runs))
			p.progStats = nil
		}
	}
	out := map[string]float64{}
	for m, xs := range per {
		out[m] = median(xs)
	}
	return out
}

// progRun is the run time and run count the ingress programs gained over a phase's replay.
type progRun struct{ ns, runs uint64 }

// ingressProgStats sums the statistics of every program on Ethernet16's TCX ingress hook.
func (p *phases) ingressProgStats() (ns, runs uint64) {
	must(p.b, inNetNS(p.s.swNS, func() error {
		ifc, err := net.InterfaceByName("Ethernet16")
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, ap := range res.Programs {
			prog, err := ebpf.NewProgramFromID(ap.ID)
			if err != nil {
				return err
			}
			st, err := prog.Stats()
			prog.Close()
			if err != nil {
				return err
			}
			ns += uint64(st.Runtime)
			runs += st.RunCount
		}
		return nil
	}))
	return ns, runs
}

// attachEmpty attaches a program that only passes the frame on (TCX_NEXT) to Ethernet16's
// ingress and egress, as telegend attaches a job here, and returns what detaches it.
func (p *phases) attachEmpty() func(uint64) string {
	b := p.b
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "empty", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	must(b, err)
	var links []link.Link
	err = testenv.NamedNetNS(p.s.swNS).Do(func() error {
		ifc, err := net.InterfaceByName("Ethernet16")
		if err != nil {
			return err
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: at})
			if err != nil {
				return err
			}
			links = append(links, l)
		}
		return nil
	})
	must(b, err)
	return func(uint64) string {
		for _, l := range links {
			must(b, l.Close())
		}
		must(b, prog.Close())
		return ""
	}
}

// startTcpdump starts tcpdump in the switch namespace, in the measured cgroup, and returns
// once it captures; the returned func stops it and reports its kernel drops.
func (p *phases) startTcpdump() func(uint64) string {
	b := p.b
	cmd := p.cg.command(exec.Command("nsenter", "--net=/run/netns/"+p.s.swNS, "--",
		"tcpdump", "-i", "Ethernet16", "-w", "/dev/null", "-n"))
	stderr, err := cmd.StderrPipe()
	must(b, err)
	must(b, cmd.Start())
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var said []string
	timeout := time.After(10 * time.Second)
	for listening := false; !listening; {
		select {
		case l, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				b.Fatalf("tcpdump ended before capturing: %s", strings.Join(said, "\n"))
			}
			said = append(said, l)
			listening = strings.Contains(l, "listening on")
		case <-timeout:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			b.Fatalf("tcpdump did not start capturing within 10 s: %s", strings.Join(said, "\n"))
		}
	}
	return func(uint64) string {
		_ = cmd.Process.Signal(syscall.SIGINT)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("tcpdump: %v: %s", err, strings.Join(rest, "\n"))
		}
		m := regexp.MustCompile(`(?m)^(\d+) packets dropped by kernel`).FindStringSubmatch(strings.Join(rest, "\n"))
		if m == nil {
			return "?"
		}
		return m[1]
	}
}

// settle waits until Ethernet16's receive counter stops moving (backlog drained), then a little
// longer so user-space readers (tcpdump, telegend) finish what they were given.
func (p *phases) settle() {
	last := p.rxPackets()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		n := p.rxPackets()
		if n == last {
			break
		}
		last = n
	}
	time.Sleep(300 * time.Millisecond)
}

// procCPU is the CPU time of every thread of a process so far, in ns (schedstat), 0 if gone.
func procCPU(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum uint64
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, _ := strconv.ParseUint(fs[0], 10, 64)
			sum += n
		}
	}
	return sum
}

// cpu is the CPU time of the measured cgroup plus every ksoftirqd, in ns.
func (p *phases) cpu() uint64 { return p.cg.usage() + ksoftirqdNs(p.b) }

// rxPackets is Ethernet16's rx_packets in the switch namespace.
func (p *phases) rxPackets() uint64 {
	var n uint64
	must(p.b, inNetNS(p.s.swNS, func() error {
		data, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			name, rest, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(name) == "Ethernet16" {
				n, err = strconv.ParseUint(strings.Fields(rest)[1], 10, 64)
				return err
			}
		}
		return fmt.Errorf("Ethernet16 not in /proc/net/dev")
	}))
	return n
}

// ksoftirqdNs sums the run time of every ksoftirqd thread (/proc/PID/schedstat, ns): receive
// work the kernel defers there is charged to no cgroup.
func ksoftirqdNs(tb testing.TB) uint64 {
	ents, err := os.ReadDir("/proc")
	must(tb, err)
	var sum uint64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || !strings.HasPrefix(string(comm), "ksoftirqd/") {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(st)); len(f) > 0 {
			v, _ := strconv.ParseUint(f[0], 10, 64)
			sum += v
		}
	}
	return sum
}

// redisPID finds the test's redis-server by its directory on its command line.
func redisPID(dir string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), "redis-server") && strings.Contains(string(cmdline), dir) {
			return pid
		}
	}
	return 0
}

// cpuGroup is a cgroup of the benchmark's own whose CPU usage is read in ns: cgroup v2
// (cpu.stat usage_usec, there without any controller enabled) when mounted, else v1 cpuacct.
// Processes added are put back where they were, and the group removed, in Cleanup.
type cpuGroup struct {
	tb     testing.TB
	dir    string
	v2     bool
	origin map[int]string // pid -> its cgroup directory before
}

func newCPUGroup(tb testing.TB) *cpuGroup {
	tb.Helper()
	root, v2 := cgroupRoot(tb)
	g := &cpuGroup{tb: tb, v2: v2, origin: map[int]string{},
		dir: filepath.Join(root, fmt.Sprintf("telegen-bench-%d", os.Getpid()))}
	must(tb, os.Mkdir(g.dir, 0o755))
	tb.Cleanup(func() {
		for pid, dir := range g.origin {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		}
		// Processes that exited a moment ago may take a moment to leave.
		var err error
		for range 50 {
			if err = os.Remove(g.dir); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		tb.Errorf("removing cgroup %s: %v", g.dir, err)
	})
	return g
}

// cgroupRoot finds a cgroup2 mount, else the cgroup v1 hierarchy with cpuacct.
func cgroupRoot(tb testing.TB) (string, bool) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	must(tb, err)
	var v1 string
	for line := range strings.Lines(string(data)) {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || f[3] != "/" {
			continue
		}
		switch {
		case g[0] == "cgroup2":
			return f[4], true
		case g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), "cpuacct") && v1 == "":
			v1 = f[4]
		}
	}
	if v1 == "" {
		testenv.Skip(tb, "no cgroup2 mount and no cgroup v1 cpuacct hierarchy to account CPU time")
	}
	return v1, false
}

// add moves a running process (all its threads) into the group.
func (g *cpuGroup) add(pid int) {
	g.tb.Helper()
	g.origin[pid] = g.cgroupOf(pid)
	must(g.tb, os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0))
}

func (g *cpuGroup) cgroupOf(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	must(g.tb, err)
	root := filepath.Dir(g.dir)
	for line := range strings.Lines(strings.TrimSpace(string(data))) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if (g.v2 && f[0] == "0" && f[1] == "") || (!g.v2 && slices.Contains(strings.Split(f[1], ","), "cpuacct")) {
			return filepath.Join(root, f[2])
		}
	}
	return root
}

// command makes cmd start inside the group (a shell puts itself there, then execs cmd).
func (g *cpuGroup) command(cmd *exec.Cmd) *exec.Cmd {
	args := append([]string{"-c", `echo $$ >"$0" && exec "$@"`, filepath.Join(g.dir, "cgroup.procs"), cmd.Path}, cmd.Args[1:]...)
	return exec.Command("sh", args...)
}

// usage is the group's CPU time so far, in ns.
func (g *cpuGroup) usage() uint64 {
	g.tb.Helper()
	if !g.v2 {
		data, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
		must(g.tb, err)
		v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		must(g.tb, err)
		return v
	}
	f, err := os.Open(filepath.Join(g.dir, "cpu.stat"))
	must(g.tb, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			must(g.tb, err)
			return n * 1000
		}
	}
	g.tb.Fatalf("%s/cpu.stat has no usage_usec", g.dir)
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
