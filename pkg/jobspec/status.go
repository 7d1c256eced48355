package jobspec

import (
	"fmt"
	"time"
)

// Tables and keys of CONFIG_DB (separator "|").
const (
	TableJob     = "TELEGEN_JOB" // TELEGEN_JOB|<job_id>: one job's intent
	TableGlobal  = "TELEGEN"     // TELEGEN|global: settings, see Globals
	KeyGlobal    = "global"
	TableFeature = "FEATURE" // FEATURE|telegen: SONiC's feature switch
	FeatureName  = "telegen"
	TablePort    = "PORT" // the keys of PORT are the valid values of the port field
)

// Tables of STATE_DB (separator "|").
const (
	TableJobState = "TELEGEN_JOB_TABLE"    // TELEGEN_JOB_TABLE|<job_id>: status and live counters
	TableResult   = "TELEGEN_RESULT_TABLE" // TELEGEN_RESULT_TABLE|<job_id>: the result document
)

// Field names of STATE_DB TELEGEN_JOB_TABLE. FieldExpiresAt (declared with the CONFIG_DB job
// fields) is also a field of this table.
const (
	FieldStatus        = "status"
	FieldReason        = "reason"
	FieldSlot          = "slot"
	FieldInterface     = "interface"
	FieldMirrorSession = "mirror_session"
	FieldCreatedAt     = "created_at"
	FieldStartedAt     = "started_at"
	FieldFinishedAt    = "finished_at"
	FieldPacketsTotal  = "packets_total"
	FieldBytesTotal    = "bytes_total"
	FieldUpdatedAt     = "updated_at"
)

// Status is the life-cycle stage of a job as STATE_DB records it.
type Status string

// Statuses.
const (
	Pending  Status = "pending"  // valid, queued for a slot
	Starting Status = "starting" // admitted; mirror and datapath being set up
	Running  Status = "running"
	Stopping Status = "stopping" // being torn down
	Done     Status = "done"     // duration elapsed
	Stopped  Status = "stopped"  // deleted by a user
	Failed   Status = "failed"
	Rejected Status = "rejected" // refused at admission (see the reason)
)

// Live reports whether a job in this status holds a slot: starting, running or stopping.
func (s Status) Live() bool { return s == Starting || s == Running || s == Stopping }

// Terminal reports whether the status is final: done, stopped, failed or rejected.
func (s Status) Terminal() bool {
	return s == Done || s == Stopped || s == Failed || s == Rejected
}

// ParseStatus returns the Status spelled s; an unknown status is a *FieldError on "status".
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case Pending, Starting, Running, Stopping, Done, Stopped, Failed, Rejected:
		return st, nil
	}
	return "", fieldErr(FieldStatus, "unknown status %s", quote(s))
}

// Reasons recorded with a status. Reason (for invalid specs), MirrorFailed and AttachFailed
// build the ones that carry details.
const (
	ReasonConcurrencyLimit = "concurrency_limit"
	ReasonFeatureDisabled  = "feature_disabled"
	ReasonDaemonRestart    = "daemon_restart"
	ReasonExpired          = "expired"
	ReasonInvalid          = "invalid"
	ReasonMirrorFailed     = "mirror_failed"
	ReasonAttachFailed     = "attach_failed"
)

// MirrorFailed is the reason of a job whose mirror session could not be set up.
func MirrorFailed(why string) string { return ReasonMirrorFailed + ": " + why }

// AttachFailed is the reason of a job whose eBPF program could not be attached.
func AttachFailed(why string) string { return ReasonAttachFailed + ": " + why }

// TimeFormat is how every time stored in CONFIG_DB and STATE_DB is written: RFC 3339 in UTC
// with exactly three fractional digits (milliseconds), e.g. "2025-01-02T03:04:05.678Z".
// Readers accept any RFC 3339 time (see ParseTime).
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t in UTC with TimeFormat; the zero time renders as "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

// ParseTime parses an RFC 3339 time with any number of fractional digits and returns it in
// UTC, truncated to milliseconds (TimeFormat's precision), so that FormatTime and ParseTime
// round-trip. "" gives the zero time. Times whose UTC year falls outside 0000-9999 are
// rejected, since RFC 3339 cannot write them.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time: %s", quote(s))
	}
	t = t.UTC().Truncate(time.Millisecond)
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("time %s is outside years 0000-9999 in UTC", quote(s))
	}
	return t, nil
}
