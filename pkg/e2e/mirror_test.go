package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// The mirror sinks of the test switch: where SPAN and ERSPAN copies surface in its netns.
const (
	spanSink   = "telegen-span0"
	erspanSink = "telegen-erspan0"
	spanPort   = "Ethernet24" // the SPAN destination port
)

var (
	orchemuOnce sync.Once
	orchemuBin  string
	orchemuErr  error
)

// buildOrchemu builds scripts/orchemu once per test binary.
func buildOrchemu(t testing.TB) string {
	t.Helper()
	orchemuOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			orchemuErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tg-e2e-orchemu")
		if err != nil {
			orchemuErr = err
			return
		}
		orchemuBin = filepath.Join(dir, "orchemu")
		cmd := exec.Command("go", "build", "-o", orchemuBin, "./scripts/orchemu")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			orchemuErr = fmt.Errorf("go build ./scripts/orchemu: %v\n%s", err, out)
		}
	})
	if orchemuErr != nil {
		t.Fatal(orchemuErr)
	}
	return orchemuBin
}

// withMirrors gives the switch what mirror sessions need: sink veths in the switch netns, the
// orchagent emulator playing MirrorOrch and AclOrch against the switch's Redis, and the
// TELEGEN|global mirror settings (mirror_timeout_sec 2, so refusals show quickly).
func (s *vswitch) withMirrors(extraGlobals ...string) {
	s.t.Helper()
	s.withMirrorsFlags(nil, extraGlobals...)
}

// withMirrorsFlags is withMirrors with extra orchemu flags.
func (s *vswitch) withMirrorsFlags(flags []string, extraGlobals ...string) {
	s.t.Helper()
	bin := buildOrchemu(s.t)
	for _, sink := range []string{spanSink, erspanSink} {
		feed := "tgfeed-" + strings.TrimPrefix(sink, "telegen-")
		run(s.t, "ip", "-n", s.swNS, "link", "add", sink, "mtu", "9216", "type", "veth", "peer", "name", feed, "mtu", "9216")
		for _, dev := range []string{sink, feed} {
			run(s.t, "ip", "netns", "exec", s.swNS, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
			run(s.t, "ip", "-n", s.swNS, "link", "set", dev, "up")
		}
	}
	pidfile := filepath.Join(s.t.TempDir(), "orchemu.pid")
	logPath := filepath.Join(s.t.TempDir(), "orchemu.log")
	logFile, err := os.Create(logPath)
	must(s.t, err)
	args := append([]string{"--net=/run/netns/" + s.swNS, "--", bin, "-db-config", s.redis.ConfigPath,
		"-pidfile", pidfile, "-log-level", "debug",
		"-span-sink", spanPort + "=" + spanSink, "-erspan-route", "0.0.0.0/0=" + erspanSink}, flags...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(s.t, cmd.Start())
	logFile.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			s.t.Error("orchemu did not exit within 5 s of SIGTERM")
		}
		if s.t.Failed() {
			b, _ := os.ReadFile(logPath)
			s.t.Logf("orchemu log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(pidfile); err == nil {
			break
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logPath)
			s.t.Fatalf("orchemu exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatal("orchemu did not get ready within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.setGlobals(append([]string{"span_dst_port", spanPort, "span_sink_netdev", spanSink,
		"erspan_src_ip", "192.0.2.1", "erspan_dst_ip", "192.0.2.2", "erspan_sink_netdev", erspanSink,
		"mirror_timeout_sec", "2"}, extraGlobals...)...)
}

// setGlobals merges fields into TELEGEN|global.
func (s *vswitch) setGlobals(kv ...string) {
	s.t.Helper()
	args := make([]any, len(kv))
	for i, g := range kv {
		args[i] = g
	}
	must(s.t, s.config.HSet(context.Background(), "TELEGEN|global", args...).Err())
}

// mirrorRows lists every CONFIG_DB MIRROR_SESSION, ACL_TABLE and ACL_RULE key and every
// STATE_DB MIRROR_SESSION_TABLE and TELEGEN_MIRROR_TABLE key, sorted.
func (s *vswitch) mirrorRows() []string {
	s.t.Helper()
	ctx := context.Background()
	var out []string
	for _, c := range []struct {
		db      string
		pattern string
	}{{"config", "MIRROR_SESSION|*"}, {"config", "ACL_TABLE|*"}, {"config", "ACL_RULE|*"},
		{"state", "MIRROR_SESSION_TABLE|*"}, {"state", "ACL_TABLE_TABLE|*"}, {"state", "ACL_RULE_TABLE|*"},
		{"state", "TELEGEN_MIRROR_TABLE|*"}} {
		cli := s.config
		if c.db == "state" {
			cli = s.state
		}
		keys, err := cli.Keys(ctx, c.pattern).Result()
		must(s.t, err)
		out = append(out, keys...)
	}
	slices.Sort(out)
	return out
}

// waitRows waits until mirrorRows equals want.
func (s *vswitch) waitRows(want ...string) {
	s.t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := s.mirrorRows()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mirror rows %q\nwant %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sinkPrograms lists the BPF programs attached to the sinks (TCX and tc), as the kernel says.
func (s *vswitch) sinkPrograms() []string {
	s.t.Helper()
	var out []string
	must(s.t, inNetNS(s.swNS, func() error {
		for _, dev := range []string{spanSink, erspanSink} {
			l, err := netlink.LinkByName(dev)
			if err != nil {
				return err
			}
			for hook, at := range map[string]ebpf.AttachType{"ingress": ebpf.AttachTCXIngress, "egress": ebpf.AttachTCXEgress} {
				res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: at})
				if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
					return err
				}
				if res != nil {
					for _, p := range res.Programs {
						out = append(out, dev+" "+hook+" "+progName(p.ID))
					}
				}
			}
			for hook, parent := range map[string]uint32{"ingress": netlink.HANDLE_MIN_INGRESS, "egress": netlink.HANDLE_MIN_EGRESS} {
				filters, err := netlink.FilterList(l, parent)
				if err != nil {
					continue
				}
				for _, f := range filters {
					if bf, ok := f.(*netlink.BpfFilter); ok {
						out = append(out, dev+" "+hook+" clsact "+bf.Name)
					}
				}
			}
		}
		return nil
	}))
	slices.Sort(out)
	return out
}

// assertMirrorClean fails unless no mirror row and no program of telegend's is left on a sink.
func (s *vswitch) assertMirrorClean() {
	s.t.Helper()
	s.waitRows()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var ours []string
		for _, p := range s.sinkPrograms() {
			if !strings.Contains(p, "orchemu_") {
				ours = append(ours, p)
			}
		}
		if len(ours) == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("left on the sinks: %v", ours)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.assertClean()
}

// TestMirrorSpanJob: a span job on Ethernet20 programs MIRROR_SESSION, orchagent (the
// emulator) activates it, telegend counts the copies on the SPAN sink exactly, and when the job
// ends the session is gone from CONFIG_DB and STATE_DB.
func TestMirrorSpanJob(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16", "Ethernet20", spanPort)
			s.withMirrors()
			pcap := genPcap(t, "all", 300)
			want := tsharkTruth(t, pcap)
			s.startDaemon()
			s.putJob("sp", "port", "Ethernet20", "span_method", "span", "duration_sec", "30")
			rec := s.waitStatus("sp", "running", 5*time.Second)
			if rec["interface"] != spanSink || rec["mirror_session"] != "telegen_sp" {
				t.Errorf("record %v: want interface %s, mirror_session telegen_sp", rec, spanSink)
			}
			got, err := s.config.HGetAll(context.Background(), "MIRROR_SESSION|telegen_sp").Result()
			must(t, err)
			if fmt.Sprint(got) != "map[direction:RX dst_port:Ethernet24 src_port:Ethernet20 type:SPAN]" {
				t.Errorf("MIRROR_SESSION|telegen_sp = %v", got)
			}
			s.waitRows("MIRROR_SESSION|telegen_sp", "MIRROR_SESSION_TABLE|telegen_sp", "TELEGEN_MIRROR_TABLE|telegen_sp")

			s.replay("Ethernet20", pcap)
			s.replay("Ethernet16", pcap) // not mirrored: must not count
			s.waitField("sp", "packets_total", strconv.Itoa(want.Frames), 3*time.Second)
			s.waitField("sp", "bytes_total", strconv.FormatUint(want.Bytes, 10), time.Second)
			time.Sleep(300 * time.Millisecond)
			if rec := s.job("sp"); rec["packets_total"] != strconv.Itoa(want.Frames) {
				t.Errorf("packets_total %s after the other port's traffic, want %d", rec["packets_total"], want.Frames)
			}

			s.delJob("sp")
			s.waitStatus("sp", "stopped", 3*time.Second)
			if res := s.result("sp"); res["packets_total"] != strconv.Itoa(want.Frames) {
				t.Errorf("result %v, want packets_total %d", res, want.Frames)
			}
			s.assertMirrorClean()
			s.daemon.stop(t)
		})
	}
}

// TestMirrorSpanToCPU: orchagent refuses a SPAN session to CPU (no STATE_DB entry); the job
// fails with a mirror_failed reason that says so, and nothing of it is left.
func TestMirrorSpanToCPU(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrors("span_dst_port", "CPU")
	s.startDaemon()
	s.putJob("cpu", "port", "Ethernet20", "span_method", "span", "duration_sec", "30")
	rec := s.waitStatus("cpu", "failed", 6*time.Second)
	want := "mirror_failed: orchagent rejected telegen_cpu: no STATE_DB MIRROR_SESSION_TABLE entry within 2s; " +
		"orchagent does not support SPAN to CPU"
	if !strings.HasPrefix(rec["reason"], want) {
		t.Errorf("reason %q\nwant it to start with %q", rec["reason"], want)
	}
	s.assertMirrorClean()
	s.daemon.stop(t)
}

// TestMirrorCrashLeavesNoOrphans: telegend is killed with SIGKILL while a filtered span job
// (MIRROR_SESSION plus ACL pre-filter) and an erspan job run. Meanwhile the erspan job's key is
// deleted and stale telegen_* entries of a job nobody runs appear (as config reload would bring
// back). After the restart the filtered job is adopted with its session and ACL intact and
// counts exactly what its ACL lets through; every other telegen_* entry is gone.
func TestMirrorCrashLeavesNoOrphans(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrors()
	ctx := context.Background()
	pcap := genPcap(t, "all", 400)
	udp := countFrames(t, pcap, "udp && !icmp && !icmpv6")
	if udp == 0 || udp == tsharkTruth(t, pcap).Frames {
		t.Fatalf("the mix has %d UDP frames; the test needs some of each", udp)
	}
	d := s.startDaemon()
	s.putJob("keep", "port", "Ethernet20", "span_method", "span", "ip_proto", "udp", "duration_sec", "60")
	s.putJob("gone", "port", "Ethernet16", "span_method", "erspan", "duration_sec", "60")
	s.waitStatus("keep", "running", 5*time.Second)
	s.waitStatus("gone", "running", 5*time.Second)
	keepRows := []string{"MIRROR_SESSION|telegen_keep", "MIRROR_SESSION_TABLE|telegen_keep", "TELEGEN_MIRROR_TABLE|telegen_keep",
		"ACL_TABLE|telegen_keep", "ACL_TABLE_TABLE|telegen_keep", "ACL_RULE|telegen_keep|RULE_1", "ACL_RULE_TABLE|telegen_keep|RULE_1"}
	s.waitRows(append(slices.Clone(keepRows), "MIRROR_SESSION|telegen_gone", "MIRROR_SESSION_TABLE|telegen_gone",
		"TELEGEN_MIRROR_TABLE|telegen_gone")...)
	if rec, _ := s.state.HGetAll(ctx, "TELEGEN_MIRROR_TABLE|telegen_keep").Result(); rec["prefilter"] != "acl" {
		t.Errorf("keep's mirror record %v: want the ACL pre-filter in force", rec)
	}

	d.kill()
	s.delJob("gone")
	for _, row := range [][]any{
		{"MIRROR_SESSION|telegen_ghost", "type", "SPAN", "src_port", "Ethernet16", "direction", "RX", "dst_port", spanPort},
		{"ACL_TABLE|telegen_ghost_egress", "type", "MIRROR", "stage", "egress", "ports@", "Ethernet16", "policy_desc", "telegen:ghost"},
		{"ACL_RULE|telegen_ghost_egress|RULE_1", "PRIORITY", "9999", "IP_PROTOCOL", "6", "MIRROR_EGRESS_ACTION", "telegen_ghost"},
	} {
		must(t, s.config.HSet(ctx, row[0].(string), row[1:]...).Err())
	}
	must(t, s.state.HSet(ctx, "TELEGEN_MIRROR_TABLE|telegen_ghost", "job_id", "ghost", "type", "SPAN", "sink", spanSink).Err())

	s.startDaemon()
	s.waitStatus("gone", "stopped", 5*time.Second)
	s.waitStatus("keep", "running", 2*time.Second)
	s.waitRows(keepRows...)

	s.replay("Ethernet20", pcap)
	s.waitField("keep", "packets_total", strconv.Itoa(udp), 3*time.Second)

	s.delJob("keep")
	s.waitStatus("keep", "stopped", 3*time.Second)
	s.assertMirrorClean()
	s.daemon.stop(t)
}

// TestMirrorERSPANSessionIDUnknown: with an orchagent that, like SONiC's, publishes no ERSPAN
// session id, an erspan job fails clearly (its copies could not be told from others') and leaves
// nothing; once erspan_platform_session_id says which id the platform stamps, it runs.
func TestMirrorERSPANSessionIDUnknown(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrorsFlags([]string{"-session-ids=false"})
	s.startDaemon()
	// With no session id known, the job takes the sink's ERSPAN copies of any session.
	s.putJob("er", "port", "Ethernet16", "span_method", "erspan", "duration_sec", "30")
	if rec := s.waitStatus("er", "running", 5*time.Second); rec["interface"] != erspanSink {
		t.Errorf("record %v: want interface %s", rec, erspanSink)
	}
	s.delJob("er")
	s.waitStatus("er", "stopped", 3*time.Second)
	s.waitRows()

	// The emulator gives its first session id 1, as a platform might always.
	s.setGlobals("erspan_platform_session_id", "1")
	s.putJob("er", "port", "Ethernet16", "span_method", "erspan", "duration_sec", "30")
	if rec := s.waitStatus("er", "running", 5*time.Second); rec["interface"] != erspanSink {
		t.Errorf("record %v: want interface %s", rec, erspanSink)
	}
	if rec, _ := s.state.HGetAll(context.Background(), "TELEGEN_MIRROR_TABLE|telegen_er").Result(); rec["erspan_session_id"] != "1" {
		t.Errorf("mirror record %v: want erspan_session_id 1", rec)
	}
	s.delJob("er")
	s.waitStatus("er", "stopped", 3*time.Second)
	s.assertMirrorClean()
	s.daemon.stop(t)
}

// countFrames counts the frames of a capture that a tshark display filter selects.
func countFrames(t *testing.T, pcap, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -Y %q: %v", filter, err)
	}
	return strings.Count(string(out), "\n")
}

// TestMirrorACLPrefilter: a span job with a filter gets an ACL MIRROR table whose rule matches
// the filter and points at the job's session, so the switch sends only matching traffic to the
// CPU: the sink netdev's own receive counter moves by exactly the matching frames (tshark's
// count), and the job counts exactly those.
func TestMirrorACLPrefilter(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrors()
	pcap := genPcap(t, "basic", 300) // IPv4 TCP, UDP and ICMP
	udp := countFrames(t, pcap, "udp")
	if udp == 0 || udp == tsharkTruth(t, pcap).Frames {
		t.Fatalf("the mix has %d UDP frames of %d: the test needs both kinds", udp, tsharkTruth(t, pcap).Frames)
	}
	s.startDaemon()
	s.putJob("acl", "port", "Ethernet20", "span_method", "span", "ip_proto@", "udp", "duration_sec", "30")
	s.waitStatus("acl", "running", 5*time.Second)
	ctx := context.Background()
	rules, err := s.config.Keys(ctx, "ACL_RULE|telegen_acl|*").Result()
	must(t, err)
	if len(rules) != 1 {
		t.Fatalf("ACL rules %v, want one", rules)
	}
	rule, err := s.config.HGetAll(ctx, rules[0]).Result()
	must(t, err)
	if rule["IP_PROTOCOL"] != "17" || rule["MIRROR_INGRESS_ACTION"] != "telegen_acl" {
		t.Errorf("%s = %v, want IP_PROTOCOL 17 mirrored to telegen_acl", rules[0], rule)
	}
	if rec := s.job("acl"); rec["mirror_note"] != "" {
		t.Errorf("mirror_note %q: the pre-filter was not used", rec["mirror_note"])
	}

	before := s.sinkRxPackets(spanSink)
	s.replay("Ethernet20", pcap)
	s.waitField("acl", "packets_total", strconv.Itoa(udp), 3*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := s.sinkRxPackets(spanSink) - before; got != uint64(udp) {
		t.Errorf("the sink received %d frames, want only the %d UDP frames", got, udp)
	}
	s.delJob("acl")
	s.waitStatus("acl", "stopped", 3*time.Second)
	s.assertMirrorClean()
	s.daemon.stop(t)
}

// sinkRxPackets is a sink netdev's receive counter, as the kernel keeps it.
func (s *vswitch) sinkRxPackets(dev string) uint64 {
	s.t.Helper()
	var n uint64
	must(s.t, inNetNS(s.swNS, func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		n = l.Attrs().Statistics.RxPackets
		return nil
	}))
	return n
}
