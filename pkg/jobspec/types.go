package jobspec

import (
	"strconv"
	"strings"
)

// Direction says which way of a port's traffic a job watches.
type Direction string

// Directions.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
	Both    Direction = "both"
)

// Ingress reports whether the job watches received traffic.
func (d Direction) Ingress() bool { return d == Ingress || d == Both }

// Egress reports whether the job watches transmitted traffic.
func (d Direction) Egress() bool { return d == Egress || d == Both }

// ParseDirection returns the Direction spelled s (exact, lower case).
func ParseDirection(s string) (Direction, error) {
	switch d := Direction(s); d {
	case Ingress, Egress, Both:
		return d, nil
	}
	return "", fieldErr(FieldDirection, "must be ingress, egress or both, not %s", quote(s))
}

// SpanMethod says how copies of a port's packets reach the CPU.
type SpanMethod string

// Span methods.
const (
	SPAN   SpanMethod = "span"   // local mirror session to a destination port
	ERSPAN SpanMethod = "erspan" // GRE-encapsulated mirror session to an IP destination
	Direct SpanMethod = "direct" // attach to the port's own netdev (SONiC-VS, lab hosts, punted traffic)
)

// ParseSpanMethod returns the SpanMethod spelled s (exact, lower case).
func ParseSpanMethod(s string) (SpanMethod, error) {
	switch m := SpanMethod(s); m {
	case SPAN, ERSPAN, Direct:
		return m, nil
	}
	return "", fieldErr(FieldSpanMethod, "must be span, erspan or direct, not %s", quote(s))
}

// ResultDetail says how much a job keeps in its result.
type ResultDetail string

// Result details.
const (
	Summary  ResultDetail = "summary"
	Flows    ResultDetail = "flows"
	PcapLike ResultDetail = "pcaplike"
)

// ParseResultDetail returns the ResultDetail spelled s (exact, lower case).
func ParseResultDetail(s string) (ResultDetail, error) {
	switch r := ResultDetail(s); r {
	case Summary, Flows, PcapLike:
		return r, nil
	}
	return "", fieldErr(FieldResultDetail, "must be summary, flows or pcaplike, not %s", quote(s))
}

// PortRange is an inclusive range of L4 ports; a single port has Lo == Hi.
type PortRange struct {
	Lo, Hi uint16
}

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// String renders the range as CONFIG_DB spells it: "80" or "1000-2000".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// parsePortRange parses "80" or "1000-2000"; the second result says what is wrong.
func parsePortRange(s string) (PortRange, string) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil {
		return PortRange{}, "must be a port 0-65535 or a range lo-hi"
	}
	if l > h {
		return PortRange{}, "range start exceeds its end"
	}
	return PortRange{Lo: uint16(l), Hi: uint16(h)}, ""
}

// ipProtoNames maps the protocol numbers that have a name to it. Parsing accepts these names
// in any case; Fields renders them in lower case.
var ipProtoNames = map[uint8]string{
	1:   "icmp",
	6:   "tcp",
	17:  "udp",
	58:  "icmpv6",
	132: "sctp",
}

// parseIPProto parses a protocol name (any case) or number 0-255.
func parseIPProto(s string) (uint8, bool) {
	for n, name := range ipProtoNames {
		if strings.EqualFold(s, name) {
			return n, true
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, false
	}
	return uint8(n), true
}

// IPProtoName returns the lower-case name of protocol p (tcp, udp, icmp, icmpv6, sctp), or
// its number in decimal.
func IPProtoName(p uint8) string {
	if name, ok := ipProtoNames[p]; ok {
		return name
	}
	return strconv.Itoa(int(p))
}
