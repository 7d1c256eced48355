package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeEnv: ports EthernetN have ifindex N+100; veth sinks "sink*" deliver through their peer
// (ifindex 900+), anything else is injected.
type fakeEnv struct{}

func (fakeEnv) Ifindex(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "Ethernet%d", &n); err == nil {
		return n + 100
	}
	return 0
}

func (fakeEnv) Deliver(sink string) (int, bool, error) {
	switch sink {
	case "sink0":
		return 900, false, nil
	case "sink1":
		return 901, false, nil
	case "Ethernet0":
		return 100, true, nil
	}
	return 0, false, fmt.Errorf("no netdev %s", sink)
}

func (fakeEnv) MAC(string) ([6]byte, error) { return [6]byte{2, 0, 0, 0, 0, 9}, nil }

func newTestOrch(t *testing.T) (*orch, *bytes.Buffer) {
	var log bytes.Buffer
	o := newOrch(slog.New(slog.NewTextHandler(&log, nil)), settings{
		spanSinks: map[string]string{"Ethernet8": "sink0"},
		routes:    []route{{netip.MustParsePrefix("192.0.2.0/24"), "sink1"}},
		acl:       true,
		ids:       true,
		nextHop:   defaultNextHop,
	})
	for _, p := range []string{"Ethernet0", "Ethernet8", "Ethernet16", "Ethernet20"} {
		o.apply(op{table: cfgPort, key: p, fields: row{"admin_status": "up"}})
	}
	return o, &log
}

func set(o *orch, table, key string, kv ...string) {
	f := row{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
	}
	o.apply(op{table: table, key: key, fields: f})
}

func del(o *orch, table, key string) { o.apply(op{table: table, key: key}) }

// show renders STATE_DB and the kernel as sorted lines.
func show(st state) string {
	var lines []string
	for _, t := range []string{stateMirrorSession, stateACLTable, stateACLRule} {
		for _, k := range slices.Sorted(maps.Keys(st.db[t])) {
			f := st.db[t][k]
			var kv []string
			for _, n := range slices.Sorted(maps.Keys(f)) {
				kv = append(kv, n+"="+f[n])
			}
			lines = append(lines, t+"|"+k+" "+strings.Join(kv, " "))
		}
	}
	for _, slot := range slices.Sorted(maps.Keys(st.kernel.sessions)) {
		s := st.kernel.sessions[slot]
		lines = append(lines, fmt.Sprintf("slot %d erspan=%v ifindex=%d ingress=%v", slot, s.erspan, s.ifindex, s.ingress))
	}
	keys := slices.Collect(maps.Keys(st.kernel.hooks))
	slices.SortFunc(keys, func(a, b hookKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	for _, k := range keys {
		for _, r := range st.kernel.hooks[k] {
			lines = append(lines, fmt.Sprintf("hook %d egress=%v: slot %d group %#x match %#x", k.ifindex, k.egress, r.slot, r.group, r.match))
		}
	}
	for _, i := range slices.Sorted(maps.Keys(st.kernel.encap)) {
		lines = append(lines, fmt.Sprintf("encap on %d", i))
	}
	return strings.Join(lines, "\n")
}

func check(t *testing.T, o *orch, want string) {
	t.Helper()
	if got := show(o.reconcile(fakeEnv{})); got != strings.TrimSpace(want) {
		t.Errorf("state:\n%s\nwant:\n%s", got, strings.TrimSpace(want))
	}
}

func TestSessions(t *testing.T) {
	o, log := newTestOrch(t)
	set(o, cfgMirrorSession, "span", "type", "SPAN", "src_port", "Ethernet16", "direction", "BOTH", "dst_port", "Ethernet8")
	set(o, cfgMirrorSession, "er", "type", "ERSPAN", "src_port", "Ethernet20", "direction", "RX", "src_ip", "192.0.2.1", "dst_ip", "192.0.2.2", "dscp", "8", "ttl", "9")
	set(o, cfgMirrorSession, "noroute", "type", "ERSPAN", "src_port", "Ethernet20", "src_ip", "10.0.0.1", "dst_ip", "10.0.0.2")
	set(o, cfgMirrorSession, "inject", "type", "SPAN", "src_port", "Ethernet20", "direction", "TX", "dst_port", "Ethernet0")
	// Refused: no STATE_DB entry.
	set(o, cfgMirrorSession, "cpu", "type", "SPAN", "src_port", "Ethernet16", "dst_port", "CPU")
	set(o, cfgMirrorSession, "badport", "type", "SPAN", "src_port", "Ethernet99", "dst_port", "Ethernet8")
	set(o, cfgMirrorSession, "baddir", "type", "SPAN", "src_port", "Ethernet16", "dst_port", "Ethernet8", "direction", "IN")
	set(o, cfgMirrorSession, "loop", "type", "SPAN", "src_port", "Ethernet8", "dst_port", "Ethernet8")
	set(o, cfgMirrorSession, "family", "type", "ERSPAN", "src_ip", "192.0.2.1", "dst_ip", "2001:db8::1")
	set(o, cfgMirrorSession, "unknown", "type", "SPAN", "dst_port", "Ethernet8", "colour", "blue")
	check(t, o, `
MIRROR_SESSION_TABLE|er dst_mac=02:54:47:00:00:01 erspan_session_id=1 monitor_port=sink1 route_prefix=192.0.2.0/24 status=active
MIRROR_SESSION_TABLE|inject monitor_port=Ethernet0 status=active
MIRROR_SESSION_TABLE|noroute erspan_session_id=3 status=inactive
MIRROR_SESSION_TABLE|span monitor_port=Ethernet8 status=active
slot 1 erspan=true ifindex=901 ingress=false
slot 2 erspan=false ifindex=100 ingress=true
slot 4 erspan=false ifindex=900 ingress=false
hook 116 egress=false: slot 4 group 0x80000004 match 0x0
hook 116 egress=true: slot 4 group 0x80000004 match 0x0
hook 120 egress=false: slot 1 group 0x80000001 match 0x0
hook 120 egress=true: slot 2 group 0x80000002 match 0x0
encap on 901`)
	for _, want := range []string{"session=cpu err=\"not supported port CPU", "session=badport err=\"failed to get valid source port list",
		"session=baddir err=\"direction \\\"IN\\\"", "session=loop err=\"destination port Ethernet8 is also a source port",
		"session=family err=\"src_ip 192.0.2.1 and dst_ip 2001:db8::1 are of different families", "session=unknown err=\"unknown attribute colour"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}

	// No modification in place: the session stays as it was, the refusal is logged once.
	log.Reset()
	set(o, cfgMirrorSession, "span", "type", "SPAN", "src_port", "Ethernet20", "direction", "BOTH", "dst_port", "Ethernet8")
	set(o, cfgMirrorSession, "span", "type", "SPAN", "src_port", "Ethernet20", "direction", "BOTH", "dst_port", "Ethernet8")
	o.reconcile(fakeEnv{})
	if n := strings.Count(log.String(), "cannot be modified in place"); n != 1 {
		t.Errorf("refusal logged %d times:\n%s", n, log)
	}
	if s := o.sessions["span"]; !slices.Equal(s.srcPorts, []string{"Ethernet16"}) {
		t.Errorf("span was modified: %+v", s)
	}
	// Delete then set, even in one batch: re-created with the new fields and its id freed.
	del(o, cfgMirrorSession, "span")
	set(o, cfgMirrorSession, "span", "type", "SPAN", "src_port", "Ethernet20", "direction", "RX", "dst_port", "Ethernet8")
	st := o.reconcile(fakeEnv{})
	if s := o.sessions["span"]; !slices.Equal(s.srcPorts, []string{"Ethernet20"}) || s.id != 4 {
		t.Errorf("span after delete and set: %+v", s)
	}
	if _, ok := st.kernel.hooks[hookKey{116, false}]; ok {
		t.Error("Ethernet16 is still mirrored")
	}
}

func TestACL(t *testing.T) {
	o, log := newTestOrch(t)
	set(o, cfgMirrorSession, "s", "type", "SPAN", "dst_port", "Ethernet8")
	set(o, cfgACLTable, "t1", "type", "MIRROR", "stage", "ingress", "ports@", "Ethernet16,Ethernet20")
	set(o, cfgACLTable, "t2", "type", "mirror", "ports@", "Ethernet16") // a second ingress MIRROR table
	set(o, cfgACLTable, "t6", "type", "MIRRORV6", "stage", "EGRESS", "ports@", "Ethernet16")
	set(o, cfgACLTable, "bad", "type", "MIRRORV6", "ports@", "Ethernet77")
	set(o, cfgACLTable, "l3", "type", "L3", "ports@", "Ethernet16") // not ours: no status
	set(o, cfgACLRule, "t1|lo", "PRIORITY", "10", "IP_PROTOCOL", "17", "MIRROR_INGRESS_ACTION", "s")
	set(o, cfgACLRule, "t1|hi", "PRIORITY", "20", "SRC_IP", "10.0.0.0/8", "L4_DST_PORT_RANGE", "80-90", "MIRROR_ACTION", "s")
	set(o, cfgACLRule, "t1|v6field", "SRC_IPV6", "2001:db8::/32", "MIRROR_INGRESS_ACTION", "s")
	set(o, cfgACLRule, "t1|nosession", "DSCP", "46", "MIRROR_INGRESS_ACTION", "nope")
	set(o, cfgACLRule, "t1|stage", "DSCP", "46", "MIRROR_EGRESS_ACTION", "s")
	set(o, cfgACLRule, "t6|r", "PRIORITY", "1", "DST_IPV6", "2001:db8::1", "VLAN_ID", "100", "MIRROR_EGRESS_ACTION", "s")
	check(t, o, `
MIRROR_SESSION_TABLE|s monitor_port=Ethernet8 status=active
ACL_TABLE_TABLE|bad status=Inactive
ACL_TABLE_TABLE|t1 status=Active
ACL_TABLE_TABLE|t2 status=Pending creation
ACL_TABLE_TABLE|t6 status=Active
ACL_RULE_TABLE|t1|hi status=Active
ACL_RULE_TABLE|t1|lo status=Active
ACL_RULE_TABLE|t1|nosession status=Inactive
ACL_RULE_TABLE|t1|stage status=Inactive
ACL_RULE_TABLE|t1|v6field status=Inactive
ACL_RULE_TABLE|t6|r status=Active
slot 1 erspan=false ifindex=900 ingress=false
hook 116 egress=false: slot 1 group 0x1 match 0x41
hook 116 egress=false: slot 1 group 0x1 match 0x10
hook 116 egress=true: slot 1 group 0x2 match 0x108
hook 120 egress=false: slot 1 group 0x1 match 0x41
hook 120 egress=false: slot 1 group 0x1 match 0x10`)
	if !strings.Contains(log.String(), "existing=t1") {
		t.Errorf("log does not say why t2 is pending:\n%s", log)
	}

	// The session cannot go while a rule uses it; it goes with the rules.
	del(o, cfgMirrorSession, "s")
	st := o.reconcile(fakeEnv{})
	if _, ok := st.db[stateMirrorSession]["s"]; !ok {
		t.Error("a session still used by ACL rules was removed")
	}
	for _, k := range []string{"t1|lo", "t1|hi", "t6|r"} {
		del(o, cfgACLRule, k)
	}
	del(o, cfgACLTable, "t1")
	check(t, o, `
ACL_TABLE_TABLE|bad status=Inactive
ACL_TABLE_TABLE|t2 status=Active
ACL_TABLE_TABLE|t6 status=Active`)
}

func TestIDsSurviveRestart(t *testing.T) {
	o, _ := newTestOrch(t)
	o.reserved = map[string]uint32{"b": 1, "a": 7}
	set(o, cfgMirrorSession, "c", "type", "ERSPAN", "src_ip", "192.0.2.1", "dst_ip", "192.0.2.2")
	set(o, cfgMirrorSession, "a", "type", "ERSPAN", "src_ip", "192.0.2.1", "dst_ip", "192.0.2.2")
	set(o, cfgMirrorSession, "b", "type", "ERSPAN", "src_ip", "192.0.2.1", "dst_ip", "192.0.2.2")
	o.reconcile(fakeEnv{})
	got := map[string]uint32{}
	for n, s := range o.sessions {
		got[n] = s.id
	}
	if want := map[string]uint32{"a": 7, "b": 1, "c": 2}; !maps.Equal(got, want) {
		t.Errorf("ids %v, want %v", got, want)
	}
}

func TestRuleBPFLayout(t *testing.T) {
	r := kRule{match: mSrc4 | mDst6, src: netip.MustParsePrefix("10.1.0.0/16"), dst: netip.MustParsePrefix("2001:db8::/32")}.bpf()
	// Addresses and masks keep network byte order in memory (little-endian words).
	if r.Src[0] != 0x0000010a || r.SrcMask[0] != 0x0000ffff || r.Dst[0] != 0xb80d0120 || r.DstMask[0] != 0xffffffff || r.DstMask[1] != 0 {
		t.Errorf("rule %+v", r)
	}
}
