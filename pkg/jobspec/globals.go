package jobspec

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Field names of CONFIG_DB TELEGEN|global that Globals reads. Fields it does not know are
// ignored, so that a newer writer does not break an older telegend.
const (
	GlobalMaxConcurrentJobs  = "max_concurrent_jobs"
	GlobalMaxJobsQueue       = "max_jobs_queue"
	GlobalDefaultDurationSec = "default_duration_sec"
	GlobalMaxDurationSec     = "max_duration_sec"
	GlobalDefaultSampleRate  = "default_sample_rate"
	GlobalTopKFlows          = "topk_flows"
	GlobalExportIntervalSec  = "export_interval_sec"
	GlobalOTLPEndpoint       = "otlp_endpoint"
	GlobalResultHistory      = "result_history"
)

// Mirror settings of TELEGEN|global: where span and erspan jobs send their copies and where the
// copies surface (docs/MIRROR.md). A span or erspan job whose settings are missing fails with
// mirror_failed naming the field; direct jobs need none of them.
const (
	GlobalSpanDstPort      = "span_dst_port"      // MIRROR_SESSION dst_port of span jobs: a PORT
	GlobalSpanSinkNetdev   = "span_sink_netdev"   // netdev where SPAN copies arrive (default span_dst_port)
	GlobalERSPANSrcIP      = "erspan_src_ip"      // MIRROR_SESSION src_ip of erspan jobs (IPv4)
	GlobalERSPANDstIP      = "erspan_dst_ip"      // MIRROR_SESSION dst_ip of erspan jobs (IPv4)
	GlobalERSPANSinkNetdev = "erspan_sink_netdev" // netdev where ERSPAN copies arrive
	GlobalERSPANGREType    = "erspan_gre_type"    // MIRROR_SESSION gre_type (default 0x88be)
	GlobalERSPANDSCP       = "erspan_dscp"        // MIRROR_SESSION dscp, 0-63 (default 0)
	GlobalERSPANTTL        = "erspan_ttl"         // MIRROR_SESSION ttl, 1-255 (default 64)
	GlobalERSPANQueue      = "erspan_queue"       // MIRROR_SESSION queue, 0-255 (default 0)
	// The ERSPAN session id the platform stamps on copies, for orchagents that do not publish
	// one per session in STATE_DB: 0-1023, or "any" (default).
	GlobalERSPANPlatformSessionID = "erspan_platform_session_id"
	GlobalMirrorTimeoutSec        = "mirror_timeout_sec" // wait for orchagent, 1-60 s (default 5)
	GlobalACLPrefilter            = "acl_prefilter"      // program ACL pre-filters: true (default) or false
)

// AnySessionID is Globals.ERSPANPlatformSessionID when copies of every session id are taken.
const AnySessionID = -1

// Globals holds the job-related settings of TELEGEN|global.
type Globals struct {
	MaxConcurrentJobs  int    // jobs that may hold a slot at once, 1-64
	MaxJobsQueue       int    // valid jobs that may wait for a slot, 0-1024 (0: reject at once)
	DefaultDurationSec uint32 // duration_sec of a job that gives none, 1-MaxDurationSec
	MaxDurationSec     uint32 // largest duration_sec a job may ask for, 1-86400
	DefaultSampleRate  uint32 // sample_rate of a job that gives none, 1-1000000
	TopKFlows          int    // flows kept per job, 1-65536
	ExportIntervalSec  int    // OTLP export and STATE_DB counter refresh period, 1-3600
	OTLPEndpoint       string // "" (export off), host:port, or an http(s) URL
	ResultHistory      int    // finished jobs whose results STATE_DB keeps, 1-10000

	// Mirror settings (see the Global* constants); "" and the zero Addr mean unset.
	SpanDstPort             string
	SpanSinkNetdev          string
	ERSPANSrcIP             netip.Addr
	ERSPANDstIP             netip.Addr
	ERSPANSinkNetdev        string
	ERSPANGREType           uint16
	ERSPANDSCP              int
	ERSPANTTL               int
	ERSPANQueue             int
	ERSPANPlatformSessionID int // 0-1023, or AnySessionID
	MirrorTimeoutSec        int
	ACLPrefilter            bool
}

// SpanSink is the netdev where SPAN copies surface: span_sink_netdev, else the netdev named
// like span_dst_port (SONiC names a port's netdev after the port).
func (g Globals) SpanSink() string {
	if g.SpanSinkNetdev != "" {
		return g.SpanSinkNetdev
	}
	return g.SpanDstPort
}

// DefaultGlobals returns the settings in force when TELEGEN|global is absent or empty.
func DefaultGlobals() Globals {
	return Globals{
		MaxConcurrentJobs:  2,
		MaxJobsQueue:       0,
		DefaultDurationSec: 120,
		MaxDurationSec:     3600,
		DefaultSampleRate:  100,
		TopKFlows:          1024,
		ExportIntervalSec:  10,
		OTLPEndpoint:       "",
		ResultHistory:      100,

		ERSPANGREType:           0x88be,
		ERSPANTTL:               64,
		ERSPANPlatformSessionID: AnySessionID,
		MirrorTimeoutSec:        5,
		ACLPrefilter:            true,
	}
}

// intSetting is one integer field of TELEGEN|global with its range and where it goes.
type intSetting struct {
	name   string
	lo, hi int64
	set    func(*Globals, int64)
	get    func(Globals) int64
}

var intSettings = []intSetting{
	{GlobalMaxConcurrentJobs, 1, 64,
		func(g *Globals, v int64) { g.MaxConcurrentJobs = int(v) },
		func(g Globals) int64 { return int64(g.MaxConcurrentJobs) }},
	{GlobalMaxJobsQueue, 0, 1024,
		func(g *Globals, v int64) { g.MaxJobsQueue = int(v) },
		func(g Globals) int64 { return int64(g.MaxJobsQueue) }},
	{GlobalDefaultDurationSec, 1, 86400,
		func(g *Globals, v int64) { g.DefaultDurationSec = uint32(v) },
		func(g Globals) int64 { return int64(g.DefaultDurationSec) }},
	{GlobalMaxDurationSec, 1, 86400,
		func(g *Globals, v int64) { g.MaxDurationSec = uint32(v) },
		func(g Globals) int64 { return int64(g.MaxDurationSec) }},
	{GlobalDefaultSampleRate, 1, 1000000,
		func(g *Globals, v int64) { g.DefaultSampleRate = uint32(v) },
		func(g Globals) int64 { return int64(g.DefaultSampleRate) }},
	{GlobalTopKFlows, 1, 65536,
		func(g *Globals, v int64) { g.TopKFlows = int(v) },
		func(g Globals) int64 { return int64(g.TopKFlows) }},
	{GlobalExportIntervalSec, 1, 3600,
		func(g *Globals, v int64) { g.ExportIntervalSec = int(v) },
		func(g Globals) int64 { return int64(g.ExportIntervalSec) }},
	{GlobalResultHistory, 1, 10000,
		func(g *Globals, v int64) { g.ResultHistory = int(v) },
		func(g Globals) int64 { return int64(g.ResultHistory) }},
	{GlobalERSPANDSCP, 0, 63,
		func(g *Globals, v int64) { g.ERSPANDSCP = int(v) },
		func(g Globals) int64 { return int64(g.ERSPANDSCP) }},
	{GlobalERSPANTTL, 1, 255,
		func(g *Globals, v int64) { g.ERSPANTTL = int(v) },
		func(g Globals) int64 { return int64(g.ERSPANTTL) }},
	{GlobalERSPANQueue, 0, 255,
		func(g *Globals, v int64) { g.ERSPANQueue = int(v) },
		func(g Globals) int64 { return int64(g.ERSPANQueue) }},
	{GlobalMirrorTimeoutSec, 1, 60,
		func(g *Globals, v int64) { g.MirrorTimeoutSec = int(v) },
		func(g Globals) int64 { return int64(g.MirrorTimeoutSec) }},
}

// stringSetting is one non-integer field of TELEGEN|global: parse stores a valid value and
// returns what is wrong with an invalid one; render gives the CONFIG_DB form.
type stringSetting struct {
	name   string
	parse  func(*Globals, string) string
	render func(Globals) string
}

var stringSettings = []stringSetting{
	{GlobalOTLPEndpoint,
		func(g *Globals, v string) string {
			if why := checkEndpoint(v); why != "" {
				return why
			}
			g.OTLPEndpoint = v
			return ""
		},
		func(g Globals) string { return g.OTLPEndpoint }},
	{GlobalSpanDstPort,
		func(g *Globals, v string) string {
			if v != "" && !validName(v, "_./:-", 64) {
				return "must be empty or a port name of at most 64 letters, digits, '_', '.', '/', ':', '-', not " + quote(v)
			}
			g.SpanDstPort = v
			return ""
		},
		func(g Globals) string { return g.SpanDstPort }},
	{GlobalSpanSinkNetdev,
		func(g *Globals, v string) string { return parseNetdev(&g.SpanSinkNetdev, v) },
		func(g Globals) string { return g.SpanSinkNetdev }},
	{GlobalERSPANSinkNetdev,
		func(g *Globals, v string) string { return parseNetdev(&g.ERSPANSinkNetdev, v) },
		func(g Globals) string { return g.ERSPANSinkNetdev }},
	{GlobalERSPANSrcIP,
		func(g *Globals, v string) string { return parseIPv4(&g.ERSPANSrcIP, v) },
		func(g Globals) string { return addrString(g.ERSPANSrcIP) }},
	{GlobalERSPANDstIP,
		func(g *Globals, v string) string { return parseIPv4(&g.ERSPANDstIP, v) },
		func(g Globals) string { return addrString(g.ERSPANDstIP) }},
	{GlobalERSPANGREType,
		func(g *Globals, v string) string {
			n, ok := ParseGREType(v)
			if !ok {
				return "must be a GRE protocol type, hex (0x88be) or decimal 0-65535, not " + quote(v)
			}
			g.ERSPANGREType = n
			return ""
		},
		func(g Globals) string { return FormatGREType(g.ERSPANGREType) }},
	{GlobalERSPANPlatformSessionID,
		func(g *Globals, v string) string {
			if v == "any" {
				g.ERSPANPlatformSessionID = AnySessionID
				return ""
			}
			n, ok := parseUint(v, 0, 1023)
			if !ok {
				return "must be any or an ERSPAN session id 0-1023, not " + quote(v)
			}
			g.ERSPANPlatformSessionID = int(n)
			return ""
		},
		func(g Globals) string {
			if g.ERSPANPlatformSessionID == AnySessionID {
				return "any"
			}
			return strconv.Itoa(g.ERSPANPlatformSessionID)
		}},
	{GlobalACLPrefilter,
		func(g *Globals, v string) string {
			switch v {
			case "true", "True":
				g.ACLPrefilter = true
			case "false", "False":
				g.ACLPrefilter = false
			default:
				return "must be true or false, not " + quote(v)
			}
			return ""
		},
		func(g Globals) string { return strconv.FormatBool(g.ACLPrefilter) }},
}

// maxNetdevLen is the longest Linux interface name (IFNAMSIZ less the NUL).
const maxNetdevLen = 15

// parseNetdev stores a Linux interface name (or "", unset) in dst.
func parseNetdev(dst *string, v string) string {
	if v != "" && (len(v) > maxNetdevLen || v == "." || v == ".." ||
		strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '/' || r == ':' || r >= 0x7f })) {
		return "must be empty or a Linux interface name of at most 15 characters, not " + quote(v)
	}
	*dst = v
	return ""
}

// parseIPv4 stores an IPv4 address (or "", unset) in dst.
func parseIPv4(dst *netip.Addr, v string) string {
	if v == "" {
		*dst = netip.Addr{}
		return ""
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return "must be empty or an IPv4 address, not " + quote(v)
	}
	*dst = a
	return ""
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ParseGREType parses a GRE protocol type as SONiC's MIRROR_SESSION gre_type spells it: hex
// with a 0x prefix ("0x88be") or decimal, 0-65535.
func ParseGREType(v string) (uint16, bool) {
	base, digits := 10, v
	if h, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
		base, digits = 16, h
	}
	if digits == "" || strings.ContainsAny(digits, "+-_") {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, base, 16)
	return uint16(n), err == nil
}

// FormatGREType renders a GRE protocol type as SONiC writes it: "0x88be".
func FormatGREType(t uint16) string { return "0x" + strconv.FormatUint(uint64(t), 16) }

// GlobalsFromFields reads the fields of TELEGEN|global over DefaultGlobals. Fields it does
// not know (and the NULL placeholder) are ignored; a bad value of a known field is a
// *FieldError naming it, e.g. "max_concurrent_jobs: must be an integer 1-64". When several
// are bad, the one whose name sorts first is reported.
func GlobalsFromFields(fields map[string]string) (Globals, error) {
	g := DefaultGlobals()
	var errs []*FieldError
	for _, s := range intSettings {
		v, ok := fields[s.name]
		if !ok {
			continue
		}
		// Plain digits, as the job's own integers: no sign (every setting is >= 0).
		n, ok := parseUint(v, uint64(s.lo), uint64(s.hi))
		if !ok {
			errs = append(errs, fieldErr(s.name, "must be an integer %d-%d, not %s", s.lo, s.hi, quote(v)))
			continue
		}
		s.set(&g, int64(n))
	}
	for _, s := range stringSettings {
		v, ok := fields[s.name]
		if !ok {
			continue
		}
		if why := s.parse(&g, v); why != "" {
			errs = append(errs, &FieldError{Field: s.name, Why: why})
		}
	}
	if len(errs) == 0 && g.DefaultDurationSec > g.MaxDurationSec {
		errs = append(errs, fieldErr(GlobalDefaultDurationSec, "must not exceed %s (%d), not %d",
			GlobalMaxDurationSec, g.MaxDurationSec, g.DefaultDurationSec))
	}
	if err := firstErr(errs); err != nil {
		return Globals{}, err
	}
	return g, nil
}

// checkEndpoint gives a light check of an OTLP endpoint: empty, host:port, or an http(s) URL
// with a host. It returns what is wrong, or "".
func checkEndpoint(v string) string {
	if v == "" {
		return ""
	}
	bad := "must be empty, host:port or an http(s) URL, not " + quote(v)
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad
	}
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return bad
		}
		if p := u.Port(); p != "" && !validPortNumber(p) {
			return bad
		}
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || !validPortNumber(port) {
		return bad
	}
	return ""
}

func validPortNumber(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// Fields renders g as the fields of TELEGEN|global; GlobalsFromFields(g.Fields()) == g for
// valid settings.
func (g Globals) Fields() map[string]string {
	m := make(map[string]string, len(intSettings)+len(stringSettings))
	for _, s := range intSettings {
		m[s.name] = strconv.FormatInt(s.get(g), 10)
	}
	for _, s := range stringSettings {
		m[s.name] = s.render(g)
	}
	return m
}
