package jobspec

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Field names of CONFIG_DB TELEGEN|global that Globals reads. Other fields of the same key
// (mirror settings) belong to other packages and are ignored here.
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
}

// GlobalsFromFields reads the fields of TELEGEN|global over DefaultGlobals. Fields it does
// not know (mirror settings, the NULL placeholder) are ignored; a bad value of a known field
// is a *FieldError naming it, e.g. "max_concurrent_jobs: must be an integer 1-64". When
// several are bad, the one whose name sorts first is reported.
func GlobalsFromFields(fields map[string]string) (Globals, error) {
	g := DefaultGlobals()
	var errs []*FieldError
	for _, s := range intSettings {
		v, ok := fields[s.name]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < s.lo || n > s.hi {
			errs = append(errs, fieldErr(s.name, "must be an integer %d-%d, not %s", s.lo, s.hi, quote(v)))
			continue
		}
		s.set(&g, n)
	}
	if v, ok := fields[GlobalOTLPEndpoint]; ok {
		if why := checkEndpoint(v); why != "" {
			errs = append(errs, &FieldError{Field: GlobalOTLPEndpoint, Why: why})
		} else {
			g.OTLPEndpoint = v
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
	m := make(map[string]string, len(intSettings)+1)
	for _, s := range intSettings {
		m[s.name] = strconv.FormatInt(s.get(g), 10)
	}
	m[GlobalOTLPEndpoint] = g.OTLPEndpoint
	return m
}
