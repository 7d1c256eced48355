package client

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// JobFromRecord builds a Job from a STATE_DB TELEGEN_JOB_TABLE hash. Fields it cannot read are
// left zero: a record is telegend's to write, and a reader never refuses one.
func JobFromRecord(id string, rec map[string]string) Job {
	j := Job{
		ID:            id,
		Status:        jobspec.Status(rec[jobspec.FieldStatus]),
		Reason:        rec[jobspec.FieldReason],
		Interface:     rec[jobspec.FieldInterface],
		MirrorSession: rec[jobspec.FieldMirrorSession],
		CreatedAt:     parseTime(rec[jobspec.FieldCreatedAt]),
		StartedAt:     parseTime(rec[jobspec.FieldStartedAt]),
		ExpiresAt:     parseTime(rec[jobspec.FieldExpiresAt]),
		FinishedAt:    parseTime(rec[jobspec.FieldFinishedAt]),
		UpdatedAt:     parseTime(rec[jobspec.FieldUpdatedAt]),
		PacketsTotal:  parseUint(rec[jobspec.FieldPacketsTotal]),
		BytesTotal:    parseUint(rec[jobspec.FieldBytesTotal]),
	}
	if s, err := strconv.Atoi(rec[jobspec.FieldSlot]); err == nil && s >= 0 {
		j.Slot = &s
	}
	if raw := rec[fieldTopFlows]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &j.TopFlows)
	}
	return j
}

func parseTime(s string) time.Time {
	t, err := jobspec.ParseTime(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// Result is a job's result document (DESIGN.md "Result document"), as decoded JSON: numbers are
// json.Number, so 64-bit counters keep every digit.
type Result map[string]any

// Result members the front-ends read.
const (
	fieldTopFlows = "top_flows"
	fieldJobID    = "job_id"
)

// nestedResultFields are the members telegend stores as JSON strings.
var nestedResultFields = map[string]bool{
	"errors": true, "top_flows": true, "latency_histogram_ns": true, "otel_export": true,
}

// textResultFields stay strings even when they look like numbers.
var textResultFields = map[string]bool{
	"status": true, "reason": true, "port": true, "interface": true, "direction": true,
	"span_method": true, "mirror_session": true, "result_detail": true, "job_id": true,
}

// ResultFromFields builds the result document from a TELEGEN_RESULT_TABLE hash: scalars typed
// as numbers and booleans where they are ones, nested parts decoded from their JSON strings,
// times and names left as strings.
func ResultFromFields(id string, fields map[string]string) Result {
	r := make(Result, len(fields)+1)
	for k, v := range fields {
		r[k] = typedValue(k, v)
	}
	r[fieldJobID] = id
	return r
}

func typedValue(name, v string) any {
	if textResultFields[name] || strings.HasSuffix(name, "_at") {
		return v
	}
	if t := strings.TrimSpace(v); nestedResultFields[name] || strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		dec := json.NewDecoder(bytes.NewReader([]byte(v)))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err == nil && !dec.More() {
			return x
		}
		return v
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if jsonNumber.MatchString(v) {
		return json.Number(v)
	}
	return v
}

// Uint reads a numeric member (0 when absent or not a number).
func (r Result) Uint(name string) uint64 {
	switch v := r[name].(type) {
	case json.Number:
		n, err := strconv.ParseUint(v.String(), 10, 64)
		if err != nil {
			f, _ := v.Float64()
			return uint64(f)
		}
		return n
	case float64:
		return uint64(v)
	}
	return 0
}

// Float reads a numeric member (0 when absent or not a number).
func (r Result) Float(name string) float64 {
	switch v := r[name].(type) {
	case json.Number:
		f, _ := v.Float64()
		return f
	case float64:
		return v
	}
	return 0
}

// String reads a member as text.
func (r Result) String(name string) string {
	switch v := r[name].(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// TopFlows decodes top_flows (nil when absent).
func (r Result) TopFlows() []Flow {
	v, ok := r[fieldTopFlows]
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var flows []Flow
	if json.Unmarshal(b, &flows) != nil {
		return nil
	}
	return flows
}
