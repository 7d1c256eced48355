package vswitchtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// The vswitch's mirror wiring (scripts/vswitch): SPAN copies of the SPAN port surface on
// telegen-span0, ERSPAN copies on telegen-erspan0.
const (
	spanSink   = "telegen-span0"
	erspanSink = "telegen-erspan0"
	erspanHLen = 50 // outer Ethernet, IPv4, GRE with sequence number, ERSPAN type II
)

// mirrorRig is a vswitch up with its orchagent emulator, ports Ethernet0 (the SPAN
// destination), Ethernet16 and Ethernet20.
type mirrorRig struct {
	*rig
	cfg, state *redis.Client
	owned      map[string]bool // CONFIG_DB keys the current subtest wrote
}

func newMirrorRig(t *testing.T) *mirrorRig {
	r := newRig(t)
	testenv.RequireTool(t, "tshark")
	bin := filepath.Join(t.TempDir(), "orchemu")
	build := exec.Command("go", "build", "-o", bin, "./scripts/orchemu")
	build.Dir = r.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./scripts/orchemu: %v\n%s", err, out)
	}
	r.env = append(r.env, "VSWITCH_ORCHEMU="+bin, "VSWITCH_SPAN_PORT=Ethernet0")
	var emuPID int
	t.Cleanup(func() {
		if out, err := r.vswitch("down"); err != nil {
			t.Errorf("cleanup: vswitch down: %v\n%s", err, out)
		}
		if emuPID != 0 && alive(emuPID) {
			t.Errorf("orchagent emulator %d left running", emuPID)
			syscall.Kill(emuPID, syscall.SIGKILL)
		}
		for _, dev := range []string{spanSink, erspanSink} {
			if _, ok := r.link(r.swNS, dev); ok {
				t.Errorf("sink %s left behind", dev)
			}
		}
	})
	r.mustVswitch("up", "--ports", "Ethernet0,Ethernet16,Ethernet20")
	b, err := os.ReadFile(filepath.Join(r.dir, "orchemu.pid"))
	if err != nil {
		t.Fatalf("orchagent emulator pidfile: %v", err)
	}
	emuPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	if !alive(emuPID) {
		t.Fatalf("orchagent emulator pid %q is not running", b)
	}
	sock := filepath.Join(r.dir, "redis.sock")
	client := func(db int) *redis.Client {
		c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, DB: db})
		t.Cleanup(func() { c.Close() })
		return c
	}
	return &mirrorRig{rig: r, cfg: client(4), state: client(6), owned: map[string]bool{}}
}

func (m *mirrorRig) hset(key string, fields ...string) {
	m.t.Helper()
	if !m.owned[key] {
		// Whatever a subtest leaves is removed, so a failure does not cascade into the next.
		m.owned[key] = true
		t := m.t
		t.Cleanup(func() {
			delete(m.owned, key)
			m.cfg.Del(context.Background(), key)
		})
	}
	args := make([]any, len(fields))
	for i, f := range fields {
		args[i] = f
	}
	if err := m.cfg.HSet(context.Background(), key, args...).Err(); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mirrorRig) del(keys ...string) {
	m.t.Helper()
	if err := m.cfg.Del(context.Background(), keys...).Err(); err != nil {
		m.t.Fatal(err)
	}
}

// waitState waits until STATE_DB key satisfies ok and returns its fields.
func (m *mirrorRig) waitState(key string, ok func(map[string]string) bool, what string) map[string]string {
	m.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		f, err := m.state.HGetAll(context.Background(), key).Result()
		if err != nil {
			m.t.Fatal(err)
		}
		if ok(f) {
			return f
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("STATE_DB %s never became %s; last %v\norchemu log:\n%s", key, what, f, m.emuLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *mirrorRig) waitActive(key string) map[string]string {
	m.t.Helper()
	return m.waitState(key, func(f map[string]string) bool { return strings.EqualFold(f["status"], "active") }, "active")
}

func (m *mirrorRig) waitGone(key string) {
	m.t.Helper()
	m.waitState(key, func(f map[string]string) bool { return len(f) == 0 }, "gone")
}

// absent checks that the STATE_DB keys do not appear within a second: how orchagent rejects.
func (m *mirrorRig) absent(keys ...string) {
	m.t.Helper()
	time.Sleep(time.Second)
	for _, key := range keys {
		if n, _ := m.state.Exists(context.Background(), key).Result(); n != 0 {
			f, _ := m.state.HGetAll(context.Background(), key).Result()
			m.t.Errorf("STATE_DB %s = %v; want no entry (rejected)", key, f)
		}
	}
}

func (m *mirrorRig) emuLog() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "orchemu.log"))
	return string(b)
}

func (m *mirrorRig) rx(dev string) uint64 {
	m.t.Helper()
	l, ok := m.link(m.swNS, dev)
	if !ok {
		m.t.Fatalf("%s missing", dev)
	}
	return l.Stats64.RX.Packets
}

// waitRx waits until dev has received want frames more than before, then checks no more come.
func (m *mirrorRig) waitRx(dev string, before, want uint64) {
	m.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for m.rx(dev)-before < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := m.rx(dev) - before; got != want {
		m.t.Errorf("%s received %d copies, want %d", dev, got, want)
	}
}

// send sends a trafgen mix out of iface in netns ns and returns the frames as sent.
func (m *mirrorRig) send(ns, iface string, n int, seed int) [][]byte {
	m.t.Helper()
	pcap := filepath.Join(m.t.TempDir(), "sent.pcap")
	m.must("nsenter", "--net=/run/netns/"+ns, "--", m.trafgen, "-send", iface, "-o", pcap,
		"-n", strconv.Itoa(n), "-mix", "all", "-seed", strconv.Itoa(seed))
	return readPcap(m.t, pcap)
}

// capture runs tshark on dev in the switch netns until it has n frames and returns them.
func (m *mirrorRig) capture(dev string, n int) func() [][]byte {
	m.t.Helper()
	path := filepath.Join(m.t.TempDir(), dev+".pcap")
	// ip netns exec, not nsenter: libpcap reads the interface from /sys, which must be the
	// namespace's own.
	cmd := exec.Command("ip", "netns", "exec", m.swNS, "tshark", "-q", "-i", dev,
		"-c", strconv.Itoa(n), "-F", "pcap", "-w", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done := make(chan error, 1)
	ready := make(chan struct{})
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			// tshark says "Capturing on" before dumpcap's socket is open; "Capture started"
			// (tshark 3.6+) once it is.
			if strings.Contains(sc.Text(), "Capture started") {
				close(ready)
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		m.t.Fatalf("tshark on %s did not start capturing", dev)
	}
	return func() [][]byte {
		m.t.Helper()
		select {
		case err := <-done:
			if err != nil {
				m.t.Fatalf("tshark on %s: %v\n%s", dev, err, log.String())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Signal(os.Interrupt)
			<-done
			m.t.Fatalf("tshark on %s did not capture %d frames in 5s:\n%s", dev, n, log.String())
		}
		return readPcap(m.t, path)
	}
}

// readPcap reads the frames of a classic pcap file (microsecond, little-endian).
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian classic pcap", path)
	}
	var frames [][]byte
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("%s: truncated record header", path)
		}
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+incl > len(b) {
			t.Fatalf("%s: truncated frame", path)
		}
		frames = append(frames, b[off:off+incl])
		off += incl
	}
	return frames
}

// writePcap writes frames as a classic pcap file for tshark.
func writePcap(t *testing.T, frames [][]byte) string {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], 1) // Ethernet
	b.Write(h)
	for _, f := range frames {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(f)))
		b.Write(r)
		b.Write(f)
	}
	path := filepath.Join(t.TempDir(), "frames.pcap")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tshark runs tshark, the judge, on frames and returns its output lines.
func tshark(t *testing.T, frames [][]byte, args ...string) []string {
	t.Helper()
	out, err := exec.Command("tshark", append([]string{"-r", writePcap(t, frames)}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	if len(out) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// tsharkFields decodes frames: one line per frame, the fields separated by tabs.
func tsharkFields(t *testing.T, frames [][]byte, fields ...string) []string {
	t.Helper()
	args := []string{"-T", "fields", "-E", "separator=/t"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	return tshark(t, frames, args...)
}

// countFiltered counts the frames a tshark display filter selects.
func countFiltered(t *testing.T, frames [][]byte, filter string) int {
	t.Helper()
	return len(tshark(t, frames, "-Y", filter, "-T", "fields", "-e", "frame.number"))
}

// orchemuPrograms lists the emulator's programs attached to dev (bpftool, in the switch netns).
func (m *mirrorRig) orchemuPrograms(dev string) string {
	m.t.Helper()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+m.swNS, "--", "bpftool", "net", "show", "dev", dev).CombinedOutput()
	if err != nil {
		m.t.Fatalf("bpftool net show dev %s: %v\n%s", dev, err, out)
	}
	var progs []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "orchemu_") {
			progs = append(progs, strings.TrimSpace(line))
		}
	}
	return strings.Join(progs, "; ")
}

func TestMirrorEmulator(t *testing.T) {
	testenv.RequireTool(t, "bpftool")
	m := newMirrorRig(t)
	ctx := context.Background()

	if out := m.mustVswitch("status"); !strings.Contains(out, "mirror: orchagent emulator pid") {
		t.Errorf("vswitch status:\n%s", out)
	}
	g, _ := m.cfg.HGetAll(ctx, "TELEGEN|global").Result()
	for k, v := range map[string]string{"span_dst_port": "Ethernet0", "span_sink_netdev": spanSink,
		"erspan_sink_netdev": erspanSink, "erspan_src_ip": "192.0.2.1", "erspan_dst_ip": "192.0.2.2"} {
		if g[k] != v {
			t.Errorf("TELEGEN|global %s = %q, want %q", k, g[k], v)
		}
	}

	t.Run("SPAN copies equal the frames sent", func(t *testing.T) {
		m.t = t
		m.hset("MIRROR_SESSION|tg_span", "type", "SPAN", "src_port", "Ethernet20", "direction", "RX", "dst_port", "Ethernet0")
		st := m.waitActive("MIRROR_SESSION_TABLE|tg_span")
		if st["monitor_port"] != "Ethernet0" {
			t.Errorf("MIRROR_SESSION_TABLE|tg_span = %v", st)
		}
		before := m.rx(spanSink)
		got := m.capture(spanSink, 300)
		sent := m.send(m.hostsNS, "vh-Ethernet20", 300, 21)
		m.waitRx(spanSink, before, 300)
		copies := got()
		for i := range sent {
			if !bytes.Equal(copies[i], sent[i]) {
				t.Fatalf("copy %d differs from the frame sent:\n% x\n% x", i, copies[i], sent[i])
			}
		}

		m.del("MIRROR_SESSION|tg_span")
		m.waitGone("MIRROR_SESSION_TABLE|tg_span")
		if p := m.orchemuPrograms("Ethernet20"); p != "" {
			t.Errorf("Ethernet20 still has %s", p)
		}
		before = m.rx(spanSink)
		m.send(m.hostsNS, "vh-Ethernet20", 50, 22)
		m.waitRx(spanSink, before, 0)
	})

	t.Run("SPAN of transmitted frames", func(t *testing.T) {
		m.t = t
		m.hset("MIRROR_SESSION|tg_tx", "type", "SPAN", "src_port", "Ethernet20", "direction", "TX", "dst_port", "Ethernet0")
		m.waitActive("MIRROR_SESSION_TABLE|tg_tx")
		before := m.rx(spanSink)
		m.send(m.hostsNS, "vh-Ethernet20", 40, 23) // received by Ethernet20: not copied
		m.send(m.swNS, "Ethernet20", 60, 24)       // transmitted by Ethernet20: copied
		m.waitRx(spanSink, before, 60)
		m.del("MIRROR_SESSION|tg_tx")
		m.waitGone("MIRROR_SESSION_TABLE|tg_tx")
	})

	t.Run("ERSPAN copies decode as type II with the session id", func(t *testing.T) {
		m.t = t
		m.hset("MIRROR_SESSION|tg_erspan", "type", "ERSPAN", "src_port", "Ethernet16", "direction", "RX",
			"src_ip", "192.0.2.1", "dst_ip", "192.0.2.2", "gre_type", "0x88be", "dscp", "10", "ttl", "33", "queue", "0")
		st := m.waitActive("MIRROR_SESSION_TABLE|tg_erspan")
		id := st["erspan_session_id"]
		if n, err := strconv.Atoi(id); err != nil || n < 1 || n > 1023 || st["monitor_port"] != erspanSink {
			t.Fatalf("MIRROR_SESSION_TABLE|tg_erspan = %v", st)
		}
		before := m.rx(erspanSink)
		got := m.capture(erspanSink, 300)
		sent := m.send(m.hostsNS, "vh-Ethernet16", 300, 31)
		m.waitRx(erspanSink, before, 300)
		copies := got()
		lines := tsharkFields(t, copies, "ip.src", "ip.dst", "ip.dsfield.dscp", "ip.ttl", "ip.checksum.status",
			"gre.proto", "erspan.version", "erspan.spanid")
		for i, l := range lines {
			f := strings.Split(l, "\t")
			// ip.* lists the outer header first (the inner one follows for IPv4 frames).
			first := func(s string) string { return strings.Split(s, ",")[0] }
			want := []string{"192.0.2.1", "192.0.2.2", "10", "33", "2", "0x88be", "1", id}
			gotf := []string{first(f[0]), first(f[1]), first(f[2]), first(f[3]), first(f[4]), f[5], f[6], f[7]}
			if strings.Join(gotf, " ") != strings.Join(want, " ") {
				t.Fatalf("copy %d: tshark says %v, want %v", i, gotf, want)
			}
			if !bytes.Equal(copies[i][erspanHLen:], sent[i]) {
				t.Fatalf("copy %d: inner frame differs from the frame sent:\n% x\n% x", i, copies[i][erspanHLen:], sent[i])
			}
		}
		if len(lines) != len(sent) {
			t.Errorf("tshark decoded %d copies, %d frames were sent", len(lines), len(sent))
		}
		m.del("MIRROR_SESSION|tg_erspan")
		m.waitGone("MIRROR_SESSION_TABLE|tg_erspan")
		if p := m.orchemuPrograms("Ethernet16"); p != "" {
			t.Errorf("Ethernet16 still has %s", p)
		}
	})

	t.Run("refused like orchagent", func(t *testing.T) {
		m.t = t
		m.hset("MIRROR_SESSION|tg_cpu", "type", "SPAN", "src_port", "Ethernet16", "direction", "RX", "dst_port", "CPU")
		m.hset("MIRROR_SESSION|tg_noport", "type", "SPAN", "src_port", "Ethernet99", "direction", "RX", "dst_port", "Ethernet0")
		m.hset("MIRROR_SESSION|tg_dir", "type", "SPAN", "src_port", "Ethernet16", "direction", "rx", "dst_port", "Ethernet0")
		m.absent("MIRROR_SESSION_TABLE|tg_cpu", "MIRROR_SESSION_TABLE|tg_noport", "MIRROR_SESSION_TABLE|tg_dir")
		log := m.emuLog()
		for _, want := range []string{"session=tg_cpu err=\"not supported port CPU", "session=tg_noport err=\"failed to get valid source port list",
			"session=tg_dir err=\"direction \\\"rx\\\" is not RX, TX or BOTH"} {
			if !strings.Contains(log, want) {
				t.Errorf("orchemu log lacks %s:\n%s", want, log)
			}
		}
		m.del("MIRROR_SESSION|tg_cpu", "MIRROR_SESSION|tg_noport", "MIRROR_SESSION|tg_dir")

		// Modification in place is refused; delete and re-create works.
		m.hset("MIRROR_SESSION|tg_mod", "type", "SPAN", "src_port", "Ethernet16", "direction", "RX", "dst_port", "Ethernet0")
		m.waitActive("MIRROR_SESSION_TABLE|tg_mod")
		m.hset("MIRROR_SESSION|tg_mod", "src_port", "Ethernet20")
		time.Sleep(300 * time.Millisecond)
		if !strings.Contains(m.emuLog(), "cannot be modified in place") {
			t.Errorf("no refusal of the modification in the log")
		}
		before := m.rx(spanSink)
		m.send(m.hostsNS, "vh-Ethernet20", 20, 41)
		m.send(m.hostsNS, "vh-Ethernet16", 30, 42)
		m.waitRx(spanSink, before, 30) // still Ethernet16's session
		m.del("MIRROR_SESSION|tg_mod")
		m.waitGone("MIRROR_SESSION_TABLE|tg_mod")
		m.hset("MIRROR_SESSION|tg_mod", "type", "SPAN", "src_port", "Ethernet20", "direction", "RX", "dst_port", "Ethernet0")
		m.waitActive("MIRROR_SESSION_TABLE|tg_mod")
		before = m.rx(spanSink)
		m.send(m.hostsNS, "vh-Ethernet20", 20, 43)
		m.waitRx(spanSink, before, 20)
		m.del("MIRROR_SESSION|tg_mod")
		m.waitGone("MIRROR_SESSION_TABLE|tg_mod")
	})

	t.Run("ACL rules select what is copied", func(t *testing.T) {
		m.t = t
		m.hset("MIRROR_SESSION|tg_acl", "type", "ERSPAN", "src_ip", "192.0.2.1", "dst_ip", "192.0.2.2")
		m.waitActive("MIRROR_SESSION_TABLE|tg_acl")
		m.hset("ACL_TABLE|tg_acl", "type", "MIRROR", "stage", "ingress", "ports@", "Ethernet16", "policy_desc", "test")
		m.waitState("ACL_TABLE_TABLE|tg_acl", func(f map[string]string) bool { return f["status"] == "Active" }, "Active")
		m.hset("ACL_RULE|tg_acl|RULE_1", "PRIORITY", "10", "IP_PROTOCOL", "17", "MIRROR_INGRESS_ACTION", "tg_acl")
		m.waitState("ACL_RULE_TABLE|tg_acl|RULE_1", func(f map[string]string) bool { return f["status"] == "Active" }, "Active")
		// A second mirror table at the same stage waits, as orchagent makes it.
		m.hset("ACL_TABLE|tg_acl2", "type", "MIRROR", "stage", "ingress", "ports@", "Ethernet20")
		m.waitState("ACL_TABLE_TABLE|tg_acl2", func(f map[string]string) bool { return f["status"] == "Pending creation" }, "Pending creation")
		// A rule naming a session that does not exist is refused.
		m.hset("ACL_RULE|tg_acl|RULE_2", "PRIORITY", "5", "DSCP", "46", "MIRROR_INGRESS_ACTION", "tg_nosuch")
		m.waitState("ACL_RULE_TABLE|tg_acl|RULE_2", func(f map[string]string) bool { return f["status"] == "Inactive" }, "Inactive")

		before := m.rx(erspanSink)
		sent := m.send(m.hostsNS, "vh-Ethernet16", 400, 51)
		udp := countFiltered(t, sent, "udp && !icmp && !icmpv6")
		if udp == 0 || udp == len(sent) {
			t.Fatalf("the mix has %d UDP frames of %d; the test needs some of each", udp, len(sent))
		}
		m.waitRx(erspanSink, before, uint64(udp))

		m.del("ACL_RULE|tg_acl|RULE_1", "ACL_RULE|tg_acl|RULE_2", "ACL_TABLE|tg_acl", "ACL_TABLE|tg_acl2", "MIRROR_SESSION|tg_acl")
		m.waitGone("MIRROR_SESSION_TABLE|tg_acl")
		m.waitGone("ACL_TABLE_TABLE|tg_acl")
		m.waitGone("ACL_RULE_TABLE|tg_acl|RULE_1")
		if p := m.orchemuPrograms("Ethernet16"); p != "" {
			t.Errorf("Ethernet16 still has %s", p)
		}
	})
	m.t = t
}
