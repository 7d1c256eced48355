package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// JobRequest is the body of POST /v1/monitor/jobs. Its values are kept as the caller wrote
// them; jobspec.Parse (through Fields) is the one validator.
type JobRequest struct {
	Port         string  `json:"port"`
	Direction    string  `json:"direction,omitempty"`
	SpanMethod   string  `json:"span_method,omitempty"`
	VLAN         Number  `json:"vlan,omitempty"`
	Filters      Filters `json:"filters,omitzero"`
	SampleRate   Number  `json:"sample_rate,omitempty"`
	DurationSec  Number  `json:"duration_sec,omitempty"`
	OTLPExport   *bool   `json:"otlp_export,omitempty"`
	ResultDetail string  `json:"result_detail,omitempty"`
}

// Filters narrows what a job counts; an empty member means any.
type Filters struct {
	IPProto   List   `json:"ip_proto,omitempty"` // tcp, udp, icmp, icmpv6, sctp or 0-255
	L4SrcPort List   `json:"l4_sport,omitempty"` // ports or lo-hi ranges
	L4DstPort List   `json:"l4_dport,omitempty"`
	SrcCIDR   string `json:"src_cidr,omitempty"`
	DstCIDR   string `json:"dst_cidr,omitempty"`
	DSCP      List   `json:"dscp,omitempty"` // 0-63
}

// Number is a numeric request value as text ("" = not given). It is written as a JSON number
// when it is one, else as a string, so that the validator can name what is wrong with it.
type Number string

// MarshalJSON writes n as a JSON number when it is one.
func (n Number) MarshalJSON() ([]byte, error) { return marshalText(string(n)) }

// List is a list request value; each item is a string as the caller wrote it. It is written as
// a JSON array whose numeric items are numbers.
type List []string

// MarshalJSON writes the list with numeric items as JSON numbers.
func (l List) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := marshalText(it)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func marshalText(s string) ([]byte, error) {
	if jsonNumber.MatchString(s) {
		return []byte(s), nil
	}
	return json.Marshal(s)
}

// REST field names (dotted paths of the request body).
const (
	restFiltersPrefix = "filters."
)

// filterFields are the TELEGEN_JOB fields that the REST request nests under "filters".
var filterFields = []string{
	jobspec.FieldIPProto, jobspec.FieldL4SrcPort, jobspec.FieldL4DstPort,
	jobspec.FieldSrcCIDR, jobspec.FieldDstCIDR, jobspec.FieldDSCP,
}

// RESTField maps a TELEGEN_JOB field name (as jobspec names it in errors, lists with or without
// the "@") to the REST request path: "dscp@" -> "filters.dscp", "vlan" -> "vlan".
func RESTField(field string) string {
	base := strings.TrimSuffix(field, jobspec.ListSuffix)
	if slices.Contains(filterFields, base) {
		return restFiltersPrefix + base
	}
	return base
}

// Fields is the request as TELEGEN_JOB fields (lists as "name@"), not yet validated: hand them
// to jobspec.Parse.
func (r JobRequest) Fields() map[string]string {
	f := map[string]string{}
	put := func(name, v string) {
		if v != "" {
			f[name] = v
		}
	}
	list := func(name string, l List) {
		if len(l) > 0 {
			f[name+jobspec.ListSuffix] = strings.Join(l, ",")
		}
	}
	// Port is required; an explicit empty port is passed on so the validator names it.
	f[jobspec.FieldPort] = r.Port
	put(jobspec.FieldDirection, r.Direction)
	put(jobspec.FieldSpanMethod, r.SpanMethod)
	put(jobspec.FieldVLAN, string(r.VLAN))
	put(jobspec.FieldSampleRate, string(r.SampleRate))
	put(jobspec.FieldDurationSec, string(r.DurationSec))
	if r.OTLPExport != nil {
		f[jobspec.FieldOTLPExport] = fmt.Sprint(*r.OTLPExport)
	}
	put(jobspec.FieldResultDetail, r.ResultDetail)
	list(jobspec.FieldIPProto, r.Filters.IPProto)
	list(jobspec.FieldL4SrcPort, r.Filters.L4SrcPort)
	list(jobspec.FieldL4DstPort, r.Filters.L4DstPort)
	put(jobspec.FieldSrcCIDR, r.Filters.SrcCIDR)
	put(jobspec.FieldDstCIDR, r.Filters.DstCIDR)
	list(jobspec.FieldDSCP, r.Filters.DSCP)
	return f
}

// Validate checks the request with jobspec.Parse as job id under the globals g and returns the
// spec whose Fields are what goes into CONFIG_DB. Its error is an invalid_argument *Error naming
// the REST field.
func (r JobRequest) Validate(id string, g jobspec.Globals) (jobspec.Spec, error) {
	if err := r.checkLists(); err != nil {
		return jobspec.Spec{}, err
	}
	spec, err := jobspec.Parse(id, r.Fields(), g)
	if err != nil {
		return jobspec.Spec{}, invalidArgument(err)
	}
	return spec, nil
}

// checkLists refuses list items that would change the list's shape once joined with commas.
func (r JobRequest) checkLists() error {
	for _, l := range []struct {
		name  string
		items List
	}{
		{jobspec.FieldIPProto, r.Filters.IPProto}, {jobspec.FieldL4SrcPort, r.Filters.L4SrcPort},
		{jobspec.FieldL4DstPort, r.Filters.L4DstPort}, {jobspec.FieldDSCP, r.Filters.DSCP},
	} {
		for _, it := range l.items {
			if it == "" || strings.Contains(it, ",") {
				return invalidField(RESTField(l.name), fmt.Sprintf("item %q: must be one non-empty value", it))
			}
		}
	}
	return nil
}

// invalidArgument turns a jobspec error into a 400 naming the REST field.
func invalidArgument(err error) *Error {
	var fe *jobspec.FieldError
	if errors.As(err, &fe) {
		return invalidField(RESTField(fe.Field), fe.Why)
	}
	return &Error{Status: StatusOf(CodeInvalidArgument), Code: CodeInvalidArgument, Message: err.Error()}
}

func invalidField(field, why string) *Error {
	return &Error{
		Status:  StatusOf(CodeInvalidArgument),
		Code:    CodeInvalidArgument,
		Message: field + ": " + why,
		Field:   field,
	}
}

// ParseJobRequest decodes a POST body. It accepts numbers as JSON numbers or strings, booleans
// as JSON booleans or "true"/"false", and lists as arrays, single values or comma-separated
// strings; null is the same as absent. Unknown members and wrong JSON types are invalid_argument
// errors naming the member ("filters.dscp"). Value checks are left to Validate.
func ParseJobRequest(body []byte) (JobRequest, error) {
	var req JobRequest
	top, err := decodeObject(body, "")
	if err != nil {
		return req, err
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		raw := top[k]
		if isNull(raw) {
			continue
		}
		var err error
		switch k {
		case "port":
			req.Port, err = asString(raw, k)
		case "direction":
			req.Direction, err = asString(raw, k)
		case "span_method":
			req.SpanMethod, err = asString(raw, k)
		case "result_detail":
			req.ResultDetail, err = asString(raw, k)
		case "vlan":
			req.VLAN, err = asNumber(raw, k)
		case "sample_rate":
			req.SampleRate, err = asNumber(raw, k)
		case "duration_sec":
			req.DurationSec, err = asNumber(raw, k)
		case "otlp_export":
			var b bool
			b, err = asBool(raw, k)
			req.OTLPExport = &b
		case "filters":
			req.Filters, err = parseFilters(raw)
		default:
			err = invalidField(k, "unknown field")
		}
		if err != nil {
			return JobRequest{}, err
		}
	}
	return req, nil
}

func parseFilters(raw json.RawMessage) (Filters, error) {
	var f Filters
	obj, err := decodeObject(raw, "filters")
	if err != nil {
		return f, err
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		raw := obj[k]
		name := restFiltersPrefix + k
		if isNull(raw) {
			continue
		}
		var err error
		switch k {
		case jobspec.FieldIPProto:
			f.IPProto, err = asList(raw, name)
		case jobspec.FieldL4SrcPort:
			f.L4SrcPort, err = asList(raw, name)
		case jobspec.FieldL4DstPort:
			f.L4DstPort, err = asList(raw, name)
		case jobspec.FieldDSCP:
			f.DSCP, err = asList(raw, name)
		case jobspec.FieldSrcCIDR:
			f.SrcCIDR, err = asString(raw, name)
		case jobspec.FieldDstCIDR:
			f.DstCIDR, err = asString(raw, name)
		default:
			err = invalidField(name, "unknown field")
		}
		if err != nil {
			return Filters{}, err
		}
	}
	return f, nil
}

// decodeObject decodes one JSON object and nothing after it.
func decodeObject(data []byte, field string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	err := dec.Decode(&obj)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data after the object")
		}
	}
	if err != nil || obj == nil {
		what := "the request body"
		if field != "" {
			what = field
		}
		msg := what + " must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		if field == "" {
			return nil, newError(CodeInvalidArgument, "%s", msg)
		}
		return nil, invalidField(field, "must be a JSON object")
	}
	return obj, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func asString(raw json.RawMessage, field string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidField(field, "must be a string, not "+abbrev(raw))
	}
	return s, nil
}

// scalarText is the text of a JSON number, string or boolean; ok is false for anything else.
func scalarText(raw json.RawMessage) (text string, isBool, ok bool) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", false, false
	}
	switch v := v.(type) {
	case json.Number:
		return v.String(), false, true
	case string:
		return v, false, true
	case bool:
		return fmt.Sprint(v), true, true
	}
	return "", false, false
}

func asNumber(raw json.RawMessage, field string) (Number, error) {
	s, isBool, ok := scalarText(raw)
	if !ok || isBool {
		return "", invalidField(field, "must be a number, not "+abbrev(raw))
	}
	return Number(s), nil
}

func asBool(raw json.RawMessage, field string) (bool, error) {
	s, _, ok := scalarText(raw)
	switch {
	case ok && s == "true":
		return true, nil
	case ok && s == "false":
		return false, nil
	}
	return false, invalidField(field, "must be true or false, not "+abbrev(raw))
}

// asList accepts [a, b], a single number or string, and "a,b".
func asList(raw json.RawMessage, field string) (List, error) {
	if s, _, ok := scalarText(raw); ok {
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		parts := strings.Split(s, ",")
		for i, p := range parts {
			parts[i] = strings.TrimSpace(p)
		}
		return List(parts), nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalidField(field, "must be a list of numbers or strings, not "+abbrev(raw))
	}
	out := make(List, 0, len(items))
	for _, it := range items {
		s, _, ok := scalarText(it)
		if !ok {
			return nil, invalidField(field, "must be a list of numbers or strings, not "+abbrev(raw))
		}
		out = append(out, s)
	}
	return out, nil
}

func abbrev(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
