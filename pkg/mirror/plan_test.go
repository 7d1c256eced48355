package mirror

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

func testGlobals() jobspec.Globals {
	g := jobspec.DefaultGlobals()
	g.SpanDstPort, g.SpanSinkNetdev = "Ethernet64", "telegen-span0"
	g.ERSPANSrcIP, g.ERSPANDstIP = netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
	g.ERSPANSinkNetdev = "telegen-erspan0"
	g.ERSPANDSCP, g.ERSPANTTL, g.ERSPANQueue = 8, 32, 1
	return g
}

func mustSpec(t *testing.T, id string, fields ...string) jobspec.Spec {
	t.Helper()
	f := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		f[fields[i]] = fields[i+1]
	}
	s, err := jobspec.Parse(id, f, jobspec.DefaultGlobals())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// render prints a plan as sorted lines "TABLE|key field=value ...", the rows it would write.
func render(p *plan) string {
	var lines []string
	row := func(table, key string, f map[string]string) {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(f)) {
			kv = append(kv, k+"="+f[k])
		}
		lines = append(lines, table+"|"+key+" "+strings.Join(kv, " "))
	}
	if p.acl() {
		row(TableMirrorSession, p.name, p.aclSession)
	} else {
		row(TableMirrorSession, p.name, p.portSession)
	}
	for _, t := range p.tables {
		row(TableACLTable, t.key, t.fields)
	}
	for _, r := range p.rules {
		row(TableACLRule, r.key, r.fields)
	}
	if p.note != "" {
		lines = append(lines, "note: "+p.note)
	}
	lines = append(lines, fmt.Sprintf("sink: %s", p.sink))
	return strings.Join(lines, "\n")
}

func TestBuildPlan(t *testing.T) {
	for _, c := range []struct {
		name   string
		spec   []string
		global func(*jobspec.Globals)
		want   string
	}{
		{"span, no filters: port mirroring", []string{"port", "Ethernet20", "span_method", "span"}, nil, `
MIRROR_SESSION|telegen_j direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
sink: telegen-span0`},
		{"span sink defaults to the destination port's netdev", []string{"port", "Ethernet20", "direction", "egress"},
			func(g *jobspec.Globals) { g.SpanSinkNetdev = "" }, `
MIRROR_SESSION|telegen_j direction=TX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
sink: Ethernet64`},
		{"erspan, both directions", []string{"port", "Ethernet16", "span_method", "erspan", "direction", "both"}, nil, `
MIRROR_SESSION|telegen_j direction=BOTH dscp=8 dst_ip=10.1.0.2 gre_type=0x88be queue=1 src_ip=10.1.0.1 src_port=Ethernet16 ttl=32 type=ERSPAN
sink: telegen-erspan0`},
		{"filters: ACL-driven session, one rule per combination",
			[]string{"port", "Ethernet20", "ip_proto@", "tcp,udp", "l4_dport@", "80,1000-2000", "dst_cidr", "10.2.0.0/16", "vlan", "100"}, nil, `
MIRROR_SESSION|telegen_j dst_port=Ethernet64 type=SPAN
ACL_TABLE|telegen_j policy_desc=telegen:j ports@=Ethernet20 stage=ingress type=MIRROR
ACL_RULE|telegen_j|RULE_1 DST_IP=10.2.0.0/16 IP_PROTOCOL=6 L4_DST_PORT=80 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=9999 VLAN_ID=100
ACL_RULE|telegen_j|RULE_2 DST_IP=10.2.0.0/16 IP_PROTOCOL=6 L4_DST_PORT_RANGE=1000-2000 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=9998 VLAN_ID=100
ACL_RULE|telegen_j|RULE_3 DST_IP=10.2.0.0/16 IP_PROTOCOL=17 L4_DST_PORT=80 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=9997 VLAN_ID=100
ACL_RULE|telegen_j|RULE_4 DST_IP=10.2.0.0/16 IP_PROTOCOL=17 L4_DST_PORT_RANGE=1000-2000 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=9996 VLAN_ID=100
sink: telegen-span0`},
		{"IPv6 filter, both directions: MIRRORV6 at each stage",
			[]string{"port", "Ethernet20", "direction", "both", "src_cidr", "2001:db8::/32", "dscp@", "46", "l4_sport", "53"}, nil, `
MIRROR_SESSION|telegen_j dst_port=Ethernet64 type=SPAN
ACL_TABLE|telegen_j policy_desc=telegen:j ports@=Ethernet20 stage=ingress type=MIRRORV6
ACL_TABLE|telegen_j_egress policy_desc=telegen:j ports@=Ethernet20 stage=egress type=MIRRORV6
ACL_RULE|telegen_j|RULE_1 DSCP=46 L4_SRC_PORT=53 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=9999 SRC_IPV6=2001:db8::/32
ACL_RULE|telegen_j_egress|RULE_1 DSCP=46 L4_SRC_PORT=53 MIRROR_EGRESS_ACTION=telegen_j PRIORITY=9999 SRC_IPV6=2001:db8::/32
sink: telegen-span0`},
		{"too many combinations: port mirroring, said why",
			[]string{"port", "Ethernet20", "dscp@", "0,1,2,3,4,5,6,7,8", "ip_proto@", "tcp,udp"}, nil, `
MIRROR_SESSION|telegen_j direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
note: the filters need 18 ACL rules, more than 16
sink: telegen-span0`},
		{"acl_prefilter false: port mirroring, said why", []string{"port", "Ethernet20", "ip_proto", "udp"},
			func(g *jobspec.Globals) { g.ACLPrefilter = false }, `
MIRROR_SESSION|telegen_j direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
note: acl_prefilter is false
sink: telegen-span0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := testGlobals()
			if c.global != nil {
				c.global(&g)
			}
			p, err := buildPlan(mustSpec(t, "j", c.spec...), g)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(p); got != strings.TrimSpace(c.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", got, strings.TrimSpace(c.want))
			}
		})
	}
}

func TestBuildPlanNeedsSettings(t *testing.T) {
	for _, c := range []struct {
		method string
		unset  func(*jobspec.Globals)
		field  string
	}{
		{"span", func(g *jobspec.Globals) { g.SpanDstPort = "" }, "span_dst_port"},
		{"erspan", func(g *jobspec.Globals) { g.ERSPANSrcIP = netip.Addr{} }, "erspan_src_ip"},
		{"erspan", func(g *jobspec.Globals) { g.ERSPANDstIP = netip.Addr{} }, "erspan_dst_ip"},
		{"erspan", func(g *jobspec.Globals) { g.ERSPANSinkNetdev = "" }, "erspan_sink_netdev"},
	} {
		g := testGlobals()
		c.unset(&g)
		_, err := buildPlan(mustSpec(t, "j", "port", "Ethernet0", "span_method", c.method), g)
		if err == nil || !strings.Contains(err.Error(), "TELEGEN|global "+c.field+" is not set") {
			t.Errorf("%s without %s: %v", c.method, c.field, err)
		}
	}
	if _, err := buildPlan(mustSpec(t, "j", "port", "Ethernet0", "span_method", "direct"), testGlobals()); err == nil {
		t.Error("a direct job got a mirror plan")
	}
}

func TestPlanHashedName(t *testing.T) {
	id := "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"
	p, err := buildPlan(mustSpec(t, id, "port", "Ethernet0", "ip_proto", "udp"), testGlobals())
	if err != nil {
		t.Fatal(err)
	}
	if p.name != jobspec.MirrorSessionName(id) || len(p.name) > 32 || p.tables[0].key != p.name ||
		p.tables[0].fields["policy_desc"] != "telegen:"+id || p.rules[0].fields["MIRROR_INGRESS_ACTION"] != p.name {
		t.Errorf("plan of a long id: %s", render(p))
	}
}
