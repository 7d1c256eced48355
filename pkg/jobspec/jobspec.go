// Package jobspec owns the meaning of TELEGEN_JOB and TELEGEN|global entries: their parsing
// and validation, their canonical CONFIG_DB form, job statuses and reasons, and the names
// derived from a job id.
package jobspec

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Field names of a CONFIG_DB TELEGEN_JOB entry. List fields are written "<name>@" (the
// ConfigDBConnector convention); Parse accepts the bare name too. FieldJobID names the key.
const (
	FieldJobID        = "job_id"
	FieldPort         = "port"
	FieldDirection    = "direction"
	FieldSpanMethod   = "span_method"
	FieldVLAN         = "vlan"
	FieldIPProto      = "ip_proto"
	FieldL4SrcPort    = "l4_sport"
	FieldL4DstPort    = "l4_dport"
	FieldSrcCIDR      = "src_cidr"
	FieldDstCIDR      = "dst_cidr"
	FieldDSCP         = "dscp"
	FieldSampleRate   = "sample_rate"
	FieldDurationSec  = "duration_sec"
	FieldOTLPExport   = "otlp_export"
	FieldResultDetail = "result_detail"
	FieldExpiresAt    = "expires_at" // RFC 3339, stamped by telegend on admission
)

// ListSuffix ends the name of a list field in CONFIG_DB.
const ListSuffix = "@"

// nullField is the placeholder ConfigDBConnector writes into an entry with no attributes.
const nullField = "NULL"

// Spec is a validated TELEGEN_JOB entry. A Spec from Parse is canonical: lists are sorted
// and free of duplicates (nil when empty), prefixes are masked, ExpiresAt is UTC at
// millisecond precision.
type Spec struct {
	ID           string
	Port         string
	Direction    Direction
	SpanMethod   SpanMethod
	VLAN         uint16 // 0 = any
	IPProtos     []uint8
	L4SrcPorts   []PortRange
	L4DstPorts   []PortRange
	SrcCIDR      netip.Prefix // the zero (invalid) Prefix = any
	DstCIDR      netip.Prefix // the zero (invalid) Prefix = any
	DSCPs        []uint8
	SampleRate   uint32 // 1 = every packet, 100 = one in a hundred
	DurationSec  uint32
	OTLPExport   bool
	ResultDetail ResultDetail
	ExpiresAt    time.Time // zero until telegend stamps it
}

// Duration is the job's window.
func (s Spec) Duration() time.Duration { return time.Duration(s.DurationSec) * time.Second }

// listFields are the fields that hold lists, by bare name.
var listFields = []string{FieldDSCP, FieldIPProto, FieldL4DstPort, FieldL4SrcPort}

// scalarFields parse one field each into a Spec; they return what is wrong, or "".
var scalarFields = map[string]func(s *Spec, v string, g Globals) string{
	FieldPort: func(s *Spec, v string, _ Globals) string {
		if v == "" {
			return "must not be empty"
		}
		if !validName(v, "_./:-", 64) {
			return "must be a port name of at most 64 letters, digits, '_', '.', '/', ':', '-', not " + quote(v)
		}
		s.Port = v
		return ""
	},
	FieldDirection: func(s *Spec, v string, _ Globals) string {
		d, err := ParseDirection(v)
		s.Direction = d
		return why(err)
	},
	FieldSpanMethod: func(s *Spec, v string, _ Globals) string {
		m, err := ParseSpanMethod(v)
		s.SpanMethod = m
		return why(err)
	},
	FieldResultDetail: func(s *Spec, v string, _ Globals) string {
		r, err := ParseResultDetail(v)
		s.ResultDetail = r
		return why(err)
	},
	FieldVLAN: func(s *Spec, v string, _ Globals) string {
		n, ok := parseUint(v, 1, 4094)
		if !ok {
			return "must be an integer 1-4094, not " + quote(v)
		}
		s.VLAN = uint16(n)
		return ""
	},
	FieldSrcCIDR: func(s *Spec, v string, _ Globals) string {
		p, ok := parsePrefix(v)
		if !ok {
			return "must be an IPv4 or IPv6 prefix or address, not " + quote(v)
		}
		s.SrcCIDR = p
		return ""
	},
	FieldDstCIDR: func(s *Spec, v string, _ Globals) string {
		p, ok := parsePrefix(v)
		if !ok {
			return "must be an IPv4 or IPv6 prefix or address, not " + quote(v)
		}
		s.DstCIDR = p
		return ""
	},
	FieldSampleRate: func(s *Spec, v string, _ Globals) string {
		n, ok := parseUint(v, 1, 1000000)
		if !ok {
			return "must be an integer 1-1000000, not " + quote(v)
		}
		s.SampleRate = uint32(n)
		return ""
	},
	FieldDurationSec: func(s *Spec, v string, g Globals) string {
		n, ok := parseUint(v, 1, uint64(g.MaxDurationSec))
		if !ok {
			return "must be an integer 1-" + strconv.FormatUint(uint64(g.MaxDurationSec), 10) +
				" (" + GlobalMaxDurationSec + "), not " + quote(v)
		}
		s.DurationSec = uint32(n)
		return ""
	},
	FieldOTLPExport: func(s *Spec, v string, _ Globals) string {
		switch v {
		case "true", "True":
			s.OTLPExport = true
		case "false", "False":
			s.OTLPExport = false
		default:
			return "must be true or false, not " + quote(v)
		}
		return ""
	},
	FieldExpiresAt: func(s *Spec, v string, _ Globals) string {
		t, err := ParseTime(v)
		if err != nil || v == "" {
			return "must be an RFC 3339 time, not " + quote(v)
		}
		s.ExpiresAt = t
		return ""
	},
}

// Parse validates the fields of TELEGEN_JOB|<id> and returns the Spec they describe, with
// defaults from g for what they leave out. g must be valid (DefaultGlobals or the result of
// GlobalsFromFields).
//
// The ConfigDBConnector placeholder field NULL is ignored. List fields may be written
// "<name>@" or bare "<name>", not both. Any error is a *FieldError naming the field as
// written ("job_id" for a bad id); when several fields are bad, the one whose name sorts
// first is reported. Whether the port exists in CONFIG_DB PORT is for the caller to check.
func Parse(id string, fields map[string]string, g Globals) (Spec, error) {
	if err := ValidJobID(id); err != nil {
		return Spec{}, err
	}
	s := Spec{
		ID:           id,
		Direction:    Ingress,
		SpanMethod:   SPAN,
		SampleRate:   g.DefaultSampleRate,
		DurationSec:  g.DefaultDurationSec,
		OTLPExport:   true,
		ResultDetail: Summary,
	}
	var errs []*FieldError
	for name, v := range fields {
		if name == nullField {
			continue
		}
		if f, ok := scalarFields[name]; ok {
			if w := f(&s, v, g); w != "" {
				errs = append(errs, &FieldError{Field: name, Why: w})
			}
			continue
		}
		base := strings.TrimSuffix(name, ListSuffix)
		if !slices.Contains(listFields, base) {
			if name == "" {
				name = `""`
			}
			errs = append(errs, &FieldError{Field: name, Why: "unknown field"})
			continue
		}
		if base != name {
			if _, both := fields[base]; both {
				errs = append(errs, fieldErr(name, "given both as %s and %s; use one", base, name))
				continue
			}
		}
		if w := parseList(&s, base, v); w != "" {
			errs = append(errs, &FieldError{Field: name, Why: w})
		}
	}
	if _, ok := fields[FieldPort]; !ok {
		errs = append(errs, &FieldError{Field: FieldPort, Why: "required"})
	}
	if len(errs) == 0 && s.SrcCIDR.IsValid() && s.DstCIDR.IsValid() && s.SrcCIDR.Addr().Is4() != s.DstCIDR.Addr().Is4() {
		errs = append(errs, fieldErr(FieldDstCIDR, "must be of the same address family as %s (%s vs %s)",
			FieldSrcCIDR, family(s.DstCIDR), family(s.SrcCIDR)))
	}
	if err := firstErr(errs); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// parseList parses the list field base (bare name) into s; it returns what is wrong, or "".
// An empty value is the empty list (any).
func parseList(s *Spec, base, v string) string {
	if v == "" {
		return ""
	}
	items := strings.Split(v, ",")
	for _, it := range items {
		if it == "" {
			return "empty item in " + quote(v)
		}
	}
	switch base {
	case FieldIPProto:
		out := make([]uint8, 0, len(items))
		for _, it := range items {
			n, ok := parseIPProto(it)
			if !ok {
				return "item " + quote(it) + ": must be tcp, udp, icmp, icmpv6, sctp or an integer 0-255"
			}
			out = append(out, n)
		}
		s.IPProtos = sortUniq(out, cmp.Compare)
	case FieldDSCP:
		out := make([]uint8, 0, len(items))
		for _, it := range items {
			n, ok := parseUint(it, 0, 63)
			if !ok {
				return "item " + quote(it) + ": must be an integer 0-63"
			}
			out = append(out, uint8(n))
		}
		s.DSCPs = sortUniq(out, cmp.Compare)
	case FieldL4SrcPort, FieldL4DstPort:
		out := make([]PortRange, 0, len(items))
		for _, it := range items {
			r, w := parsePortRange(it)
			if w != "" {
				return "item " + quote(it) + ": " + w
			}
			out = append(out, r)
		}
		out = sortUniq(out, comparePortRange)
		if base == FieldL4SrcPort {
			s.L4SrcPorts = out
		} else {
			s.L4DstPorts = out
		}
	}
	return ""
}

func comparePortRange(a, b PortRange) int {
	if c := cmp.Compare(a.Lo, b.Lo); c != 0 {
		return c
	}
	return cmp.Compare(a.Hi, b.Hi)
}

// sortUniq sorts xs and drops duplicates.
func sortUniq[T comparable](xs []T, c func(a, b T) int) []T {
	slices.SortFunc(xs, c)
	return slices.Compact(xs)
}

// parseUint parses a decimal integer within [lo, hi].
func parseUint(v string, lo, hi uint64) (uint64, bool) {
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil && lo <= n && n <= hi
}

// parsePrefix parses a prefix, or a bare address as a host prefix, and masks it. Zoned
// addresses are refused.
func parsePrefix(v string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// why returns the Why of a *FieldError from the Parse* helpers, or "".
func why(err error) string {
	if err == nil {
		return ""
	}
	return err.(*FieldError).Why
}

// Fields renders s in canonical CONFIG_DB form: lists as "<name>@" comma-joined and sorted,
// protocols by name where one exists, fields meaning "any" (vlan 0, empty lists, invalid
// prefixes) left out; port, direction, span_method, sample_rate, duration_sec, otlp_export and
// result_detail always present; expires_at only when set. For a Spec from Parse,
// Parse(s.ID, s.Fields(), g) gives s back.
func (s Spec) Fields() map[string]string {
	m := map[string]string{
		FieldPort:         s.Port,
		FieldDirection:    string(s.Direction),
		FieldSpanMethod:   string(s.SpanMethod),
		FieldSampleRate:   strconv.FormatUint(uint64(s.SampleRate), 10),
		FieldDurationSec:  strconv.FormatUint(uint64(s.DurationSec), 10),
		FieldOTLPExport:   strconv.FormatBool(s.OTLPExport),
		FieldResultDetail: string(s.ResultDetail),
	}
	if s.VLAN != 0 {
		m[FieldVLAN] = strconv.Itoa(int(s.VLAN))
	}
	if len(s.IPProtos) > 0 {
		m[FieldIPProto+ListSuffix] = joinList(s.IPProtos, IPProtoName)
	}
	if len(s.L4SrcPorts) > 0 {
		m[FieldL4SrcPort+ListSuffix] = joinList(s.L4SrcPorts, PortRange.String)
	}
	if len(s.L4DstPorts) > 0 {
		m[FieldL4DstPort+ListSuffix] = joinList(s.L4DstPorts, PortRange.String)
	}
	if len(s.DSCPs) > 0 {
		m[FieldDSCP+ListSuffix] = joinList(s.DSCPs, func(d uint8) string { return strconv.Itoa(int(d)) })
	}
	if s.SrcCIDR.IsValid() {
		m[FieldSrcCIDR] = s.SrcCIDR.String()
	}
	if s.DstCIDR.IsValid() {
		m[FieldDstCIDR] = s.DstCIDR.String()
	}
	if !s.ExpiresAt.IsZero() {
		m[FieldExpiresAt] = FormatTime(s.ExpiresAt)
	}
	return m
}

func joinList[T any](xs []T, str func(T) string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = str(x)
	}
	return strings.Join(parts, ",")
}
