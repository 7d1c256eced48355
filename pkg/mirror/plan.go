package mirror

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// CONFIG_DB tables and fields telegend writes, with SONiC's names (reference/SONIC.md §2).
const (
	TableMirrorSession = "MIRROR_SESSION"
	TableACLTable      = "ACL_TABLE"
	TableACLRule       = "ACL_RULE"
)

// STATE_DB tables: orchagent's (MirrorOrch, AclOrch) and telegend's own record of what it made.
const (
	StateMirrorSession = "MIRROR_SESSION_TABLE"
	StateACLTable      = "ACL_TABLE_TABLE"
	StateACLRule       = "ACL_RULE_TABLE"
	// StateRecord is TELEGEN_MIRROR_TABLE|<session>: which job owns a session and what it
	// made for it (see the Record* fields).
	StateRecord = "TELEGEN_MIRROR_TABLE"
)

// Fields of a TELEGEN_MIRROR_TABLE record.
const (
	RecordJobID         = "job_id"
	RecordType          = "type"              // SPAN or ERSPAN
	RecordSink          = "sink"              // netdev where the copies surface
	RecordSessionID     = "erspan_session_id" // ERSPAN: the id copies carry, "any", or "" while unknown
	RecordPrefilter     = "prefilter"         // "acl" (ACL pre-filter in force) or "port" (every frame)
	RecordPrefilterNote = "prefilter_note"    // why a job with filters has no ACL pre-filter
	RecordACLTables     = "acl_tables@"       // the ACL tables made for the job
)

// FieldSessionID is the STATE_DB MIRROR_SESSION_TABLE field where an orchagent that publishes
// ERSPAN session ids (the virtual switch's emulator does; SONiC's orchagent does not) puts the
// id of a session's copies.
const FieldSessionID = "erspan_session_id"

// Session types of MIRROR_SESSION.
const (
	TypeSPAN   = "SPAN"
	TypeERSPAN = "ERSPAN"
)

// maxRules caps the ACL rules of one job: a job whose filters need more (one rule per
// combination of its lists) is mirrored port-wide instead.
const maxRules = 16

// descPrefix starts the policy_desc of an ACL table of ours; the job id follows.
const descPrefix = "telegen:"

// egressSuffix names a job's egress-stage ACL table (the ingress one is the session name).
const egressSuffix = "_egress"

// entry is one CONFIG_DB row.
type entry struct {
	key    string
	fields map[string]string
}

// plan is everything a job's session needs, derived from its spec and the settings alone.
type plan struct {
	jobID string
	name  string // MIRROR_SESSION key
	typ   string // TypeSPAN or TypeERSPAN
	sink  string // netdev where copies surface
	// portSession mirrors every frame of the job's port (src_port and direction set);
	// aclSession is the same session for ACL-driven mirroring (no src_port).
	portSession, aclSession map[string]string
	tables                  []entry // ACL_TABLE rows, nil without a pre-filter
	rules                   []entry // ACL_RULE rows, keys "table|rule"
	note                    string  // why a job with filters has no pre-filter
	spanDst                 string
	erspanDst               netip.Addr
}

func (p *plan) acl() bool { return len(p.tables) > 0 }

// dropACL falls back to port mirroring and says why.
func (p *plan) dropACL(why string) {
	p.tables, p.rules, p.note = nil, nil, why
}

// buildPlan derives a job's MIRROR_SESSION and ACL rows. It fails, naming the TELEGEN|global
// field, when a setting the job's span method needs is missing.
func buildPlan(spec jobspec.Spec, g jobspec.Globals) (*plan, error) {
	p := &plan{jobID: spec.ID, name: jobspec.MirrorSessionName(spec.ID)}
	s := map[string]string{}
	switch spec.SpanMethod {
	case jobspec.SPAN:
		if g.SpanDstPort == "" {
			return nil, notSet(jobspec.GlobalSpanDstPort, "span jobs need the SPAN destination port")
		}
		p.typ, p.sink, p.spanDst = TypeSPAN, g.SpanSink(), g.SpanDstPort
		s["type"], s["dst_port"] = TypeSPAN, g.SpanDstPort
	case jobspec.ERSPAN:
		switch {
		case !g.ERSPANSrcIP.IsValid():
			return nil, notSet(jobspec.GlobalERSPANSrcIP, "erspan jobs need the GRE source address")
		case !g.ERSPANDstIP.IsValid():
			return nil, notSet(jobspec.GlobalERSPANDstIP, "erspan jobs need the GRE destination address")
		case g.ERSPANSinkNetdev == "":
			return nil, notSet(jobspec.GlobalERSPANSinkNetdev, "erspan jobs need the netdev where the copies arrive")
		}
		p.typ, p.sink, p.erspanDst = TypeERSPAN, g.ERSPANSinkNetdev, g.ERSPANDstIP
		s["type"] = TypeERSPAN
		s["src_ip"], s["dst_ip"] = g.ERSPANSrcIP.String(), g.ERSPANDstIP.String()
		s["gre_type"] = jobspec.FormatGREType(g.ERSPANGREType)
		s["dscp"], s["ttl"], s["queue"] = strconv.Itoa(g.ERSPANDSCP), strconv.Itoa(g.ERSPANTTL), strconv.Itoa(g.ERSPANQueue)
	default:
		return nil, fmt.Errorf("span_method %s needs no mirror session", spec.SpanMethod)
	}
	p.aclSession = s
	p.portSession = map[string]string{"src_port": spec.Port, "direction": sonicDirection(spec.Direction)}
	for k, v := range s {
		p.portSession[k] = v
	}

	switch {
	case !hasFilters(spec):
	case !g.ACLPrefilter:
		p.note = jobspec.GlobalACLPrefilter + " is false"
	default:
		if err := p.addACL(spec); err != nil {
			p.dropACL(err.Error())
		}
	}
	return p, nil
}

func notSet(field, why string) error {
	return fmt.Errorf("TELEGEN|global %s is not set: %s (docs/MIRROR.md)", field, why)
}

// sonicDirection is MIRROR_SESSION's direction for a job's.
func sonicDirection(d jobspec.Direction) string {
	switch d {
	case jobspec.Egress:
		return "TX"
	case jobspec.Both:
		return "BOTH"
	}
	return "RX"
}

func hasFilters(s jobspec.Spec) bool {
	return s.VLAN != 0 || len(s.IPProtos) > 0 || len(s.L4SrcPorts) > 0 || len(s.L4DstPorts) > 0 ||
		s.SrcCIDR.IsValid() || s.DstCIDR.IsValid() || len(s.DSCPs) > 0
}

// addACL adds the job's ACL tables and rules: a MIRROR table (MIRRORV6 when an address filter
// is IPv6) per stage of the job's direction, bound to its port, with one rule per combination of
// its list filters, each mirroring to the job's session.
func (p *plan) addACL(spec jobspec.Spec) error {
	v6 := spec.SrcCIDR.IsValid() && spec.SrcCIDR.Addr().Is6() || spec.DstCIDR.IsValid() && spec.DstCIDR.Addr().Is6()
	combos := max(1, len(spec.IPProtos)) * max(1, len(spec.L4SrcPorts)) * max(1, len(spec.L4DstPorts)) * max(1, len(spec.DSCPs))
	if combos > maxRules {
		return fmt.Errorf("the filters need %d ACL rules, more than %d", combos, maxRules)
	}
	base := map[string]string{}
	if spec.VLAN != 0 {
		base["VLAN_ID"] = strconv.Itoa(int(spec.VLAN))
	}
	srcField, dstField := "SRC_IP", "DST_IP"
	if v6 {
		srcField, dstField = "SRC_IPV6", "DST_IPV6"
	}
	if spec.SrcCIDR.IsValid() {
		base[srcField] = spec.SrcCIDR.String()
	}
	if spec.DstCIDR.IsValid() {
		base[dstField] = spec.DstCIDR.String()
	}
	rules := []map[string]string{base}
	rules = expand(rules, spec.IPProtos, func(r map[string]string, v uint8) { r["IP_PROTOCOL"] = strconv.Itoa(int(v)) })
	rules = expand(rules, spec.L4SrcPorts, func(r map[string]string, v jobspec.PortRange) { setPort(r, "L4_SRC_PORT", v) })
	rules = expand(rules, spec.L4DstPorts, func(r map[string]string, v jobspec.PortRange) { setPort(r, "L4_DST_PORT", v) })
	rules = expand(rules, spec.DSCPs, func(r map[string]string, v uint8) { r["DSCP"] = strconv.Itoa(int(v)) })

	typ := "MIRROR"
	if v6 {
		typ = "MIRRORV6"
	}
	var stages []string
	if spec.Direction.Ingress() {
		stages = append(stages, "ingress")
	}
	if spec.Direction.Egress() {
		stages = append(stages, "egress")
	}
	for _, stage := range stages {
		table, action := p.name, "MIRROR_INGRESS_ACTION"
		if stage == "egress" {
			table, action = p.name+egressSuffix, "MIRROR_EGRESS_ACTION"
		}
		p.tables = append(p.tables, entry{table, map[string]string{
			"type": typ, "stage": stage, "ports@": spec.Port, "policy_desc": descPrefix + spec.ID,
		}})
		for i, r := range rules {
			f := map[string]string{"PRIORITY": strconv.Itoa(9999 - i), action: p.name}
			for k, v := range r {
				f[k] = v
			}
			p.rules = append(p.rules, entry{table + "|RULE_" + strconv.Itoa(i+1), f})
		}
	}
	return nil
}

// expand multiplies rules by the values of one list filter (an empty list matches any).
func expand[T any](rules []map[string]string, values []T, set func(map[string]string, T)) []map[string]string {
	if len(values) == 0 {
		return rules
	}
	out := make([]map[string]string, 0, len(rules)*len(values))
	for _, r := range rules {
		for _, v := range values {
			c := make(map[string]string, len(r)+1)
			for k, x := range r {
				c[k] = x
			}
			set(c, v)
			out = append(out, c)
		}
	}
	return out
}

func setPort(r map[string]string, field string, v jobspec.PortRange) {
	if v.Lo == v.Hi {
		r[field] = strconv.Itoa(int(v.Lo))
	} else {
		r[field+"_RANGE"] = v.String()
	}
}

// tableNames lists the ACL tables a job's session may have, whatever its plan.
func tableNames(session string) []string {
	return []string{session, session + egressSuffix}
}
