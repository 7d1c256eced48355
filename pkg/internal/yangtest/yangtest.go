// Package yangtest owns the bridge from CONFIG_DB-style test vectors to the sonic-telegen YANG
// model: it renders entries as sonic-yang JSON instance documents, runs Debian's yanglint on them,
// and says which field and which kind of error a rejection names.
package yangtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// Module is the name of the model under test, ModuleFile its file in the model directory.
const (
	Module     = "sonic-telegen"
	ModuleFile = Module + ".yang"
)

// Deps are the local stand-ins for the SONiC modules the model imports, in the order yanglint
// loads them (relative to the model directory). ietf-inet-types and ietf-yang-types come with
// libyang itself.
var Deps = []string{"deps/sonic-types.yang", "deps/sonic-port.yang"}

// ListSuffix ends the CONFIG_DB name of a list field (ConfigDBConnector's "name@").
const ListSuffix = "@"

// numericFields are the leaves (and leaf-lists) whose values libyang's JSON parser wants as JSON
// numbers: integer types, and ip_proto's union of an enumeration and uint8. CONFIG_DB holds
// every value as a string; SONiC parses with libyang's json_string_datatypes option, which
// Debian's libyang 2 lacks, so Doc renders integer-looking values of these fields as numbers and
// everything else as strings, which is what that option amounts to. TestNumericFieldsMatchModel
// keeps this list honest against the model.
var numericFields = map[string]bool{
	// TELEGEN_JOB
	"vlan": true, "ip_proto": true, "dscp": true, "sample_rate": true, "duration_sec": true,
	// TELEGEN|global
	"max_concurrent_jobs": true, "max_jobs_queue": true, "default_duration_sec": true,
	"max_duration_sec": true, "default_sample_rate": true, "topk_flows": true,
	"export_interval_sec": true, "result_history": true,
	"erspan_dscp": true, "erspan_ttl": true, "erspan_queue": true, "erspan_platform_session_id": true,
	"mirror_timeout_sec": true,
	// PORT (stand-in)
	"speed": true, "mtu": true, "index": true,
}

// Dir returns the sonic-yang directory of this repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "sonic-yang")
}

// Job is one TELEGEN_JOB entry as CONFIG_DB holds it.
type Job struct {
	ID     string
	Fields map[string]string
}

// Instance is the CONFIG_DB content one YANG check looks at.
type Instance struct {
	Ports  []string          // keys of PORT (the stand-in gives each the mandatory lanes and speed)
	Global map[string]string // fields of TELEGEN|global; nil leaves the table out
	Jobs   []Job
}

// Doc renders in as a sonic-yang JSON instance document, as sonic-cfggen's translation to YANG
// would: one container per table, a list per keyed table, "name@" list fields as leaf-lists of
// their comma-separated items ("" is the empty list), and fields in sorted order (so the first
// bad field libyang meets is the one jobspec reports). Field names are passed through untouched
// otherwise, so an unknown field stays unknown to YANG too. The port table is written first so
// that the document reads like sonic-yang-models' tests_config.
func (in Instance) Doc() []byte {
	var b bytes.Buffer
	b.WriteString("{")
	b.WriteString(`"sonic-port:sonic-port":{"sonic-port:PORT":{"PORT_LIST":[`)
	for i, p := range in.Ports {
		if i > 0 {
			b.WriteString(",")
		}
		writeEntry(&b, [][2]string{{"name", p}, {"lanes", fmt.Sprint(i)}, {"speed", "40000"}})
	}
	b.WriteString(`]}}`)
	if in.Global != nil || len(in.Jobs) > 0 {
		b.WriteString(`,"sonic-telegen:sonic-telegen":{`)
		sep := ""
		if in.Global != nil {
			b.WriteString(`"sonic-telegen:TELEGEN":{"global":`)
			writeEntry(&b, sortedPairs(in.Global))
			b.WriteString("}")
			sep = ","
		}
		if len(in.Jobs) > 0 {
			b.WriteString(sep + `"sonic-telegen:TELEGEN_JOB":{"TELEGEN_JOB_LIST":[`)
			for i, j := range in.Jobs {
				if i > 0 {
					b.WriteString(",")
				}
				writeEntry(&b, append([][2]string{{"job_id", j.ID}}, sortedPairs(j.Fields)...))
			}
			b.WriteString("]}")
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.Bytes()
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// writeEntry writes one JSON object; duplicate names are kept (a field named like the key must
// reach libyang as written, and be refused there).
func writeEntry(b *bytes.Buffer, pairs [][2]string) {
	b.WriteString("{")
	for i, p := range pairs {
		if i > 0 {
			b.WriteString(",")
		}
		name, v := p[0], p[1]
		if base, ok := strings.CutSuffix(name, ListSuffix); ok && base != "" {
			writeString(b, base)
			b.WriteString(":[")
			if v != "" {
				for j, it := range strings.Split(v, ",") {
					if j > 0 {
						b.WriteString(",")
					}
					writeValue(b, base, it)
				}
			}
			b.WriteString("]")
			continue
		}
		writeString(b, name)
		b.WriteString(":")
		writeValue(b, name, v)
	}
	b.WriteString("}")
}

var (
	integerRe = regexp.MustCompile(`^(-?)0*([0-9]+)$`)
	decimalRe = regexp.MustCompile(`^(-?)0*([0-9]+\.[0-9]+)$`)
)

// writeValue writes v as a JSON number when field is numeric and v spells a number (leading
// zeros dropped, as a JSON number cannot have them), else as a JSON string.
func writeValue(b *bytes.Buffer, field, v string) {
	if numericFields[field] {
		if m := integerRe.FindStringSubmatch(v); m != nil {
			b.WriteString(m[1] + m[2])
			return
		}
		if m := decimalRe.FindStringSubmatch(v); m != nil {
			b.WriteString(m[1] + m[2])
			return
		}
	}
	writeString(b, v)
}

// writeString writes s as a JSON string, without HTML escaping (values stay readable).
func writeString(b *bytes.Buffer, s string) {
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(enc.Bytes(), []byte("\n")))
}

// Model runs yanglint on the model in a sonic-yang directory.
type Model struct {
	Dir      string
	yanglint string
}

// Open returns the repository's model, skipping the test (failing it under CI) without yanglint
// (Debian package libyang2-tools).
func Open(t testing.TB) *Model {
	t.Helper()
	bin := testenv.RequireTool(t, "yanglint")
	return &Model{Dir: Dir(), yanglint: bin}
}

// Verdict is yanglint's judgement of one document.
type Verdict struct {
	OK      bool
	Message string // libyang's error, "" when OK
	Field   string // the field the error names (FieldOf)
	Class   string // the kind of error (Classify)
}

// Compile checks the model and its stand-ins on their own (yanglint's strict schema checks).
func (m *Model) Compile() error {
	out, err := m.run(m.schemaArgs()...)
	if err != nil || len(out) > 0 {
		return fmt.Errorf("yanglint %s: %v: %s", ModuleFile, err, out)
	}
	return nil
}

func (m *Model) schemaArgs() []string {
	args := []string{"-D", "-p", m.Dir, "-p", filepath.Join(m.Dir, "deps"), filepath.Join(m.Dir, ModuleFile)}
	for _, d := range Deps {
		args = append(args, filepath.Join(m.Dir, d))
	}
	return args
}

// Tree returns the model's schema tree as yanglint prints it (-f tree).
func (m *Model) Tree() (string, error) {
	out, err := m.run(append([]string{"-f", "tree"}, m.schemaArgs()...)...)
	if err != nil {
		return "", fmt.Errorf("yanglint -f tree: %v: %s", err, out)
	}
	return string(out), nil
}

// Validate parses and validates doc as a configuration datastore (strict: unknown nodes are
// errors), as SONiC's sonic-yang-models tests do.
func (m *Model) Validate(doc []byte) (Verdict, error) {
	f, err := os.CreateTemp("", "yangtest-*.json")
	if err != nil {
		return Verdict{}, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(doc); err != nil {
		f.Close()
		return Verdict{}, err
	}
	if err := f.Close(); err != nil {
		return Verdict{}, err
	}
	out, err := m.run(append(append([]string{"-t", "config"}, m.schemaArgs()...), f.Name())...)
	msg := strings.TrimSpace(string(out))
	if err == nil && msg == "" {
		return Verdict{OK: true}, nil
	}
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		return Verdict{}, fmt.Errorf("yanglint: %w", err)
	}
	if err == nil {
		return Verdict{}, fmt.Errorf("yanglint exited 0 but printed %q", msg)
	}
	msg = errorLines(msg)
	if msg == "" {
		return Verdict{}, fmt.Errorf("yanglint failed (%v) without a libyang error: %s", err, out)
	}
	return Verdict{Message: msg, Field: FieldOf(msg), Class: Classify(msg)}, nil
}

func (m *Model) run(args ...string) ([]byte, error) {
	cmd := exec.Command(m.yanglint, args...)
	cmd.Dir = m.Dir
	return cmd.CombinedOutput()
}

// errorLines keeps libyang's own error lines, dropping yanglint's "Failed to parse" summary.
func errorLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "libyang err : "); ok {
			keep = append(keep, rest)
		}
	}
	return strings.Join(keep, "\n")
}

var (
	namedNodeRe = regexp.MustCompile(`^(?:Node|Mandatory node|Duplicate instance of) "([^"]+)"`)
	ownPrefixRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*): `)
	locationRe  = regexp.MustCompile(`\((?:Data|Schema) location "([^"]*)"`)
	predicateRe = regexp.MustCompile(`\[[^\]]*\]`)
)

// FieldOf returns the CONFIG_DB field a libyang error is about: the node it names (unknown,
// missing, duplicate), the field an error-message of this model starts with ("dst_cidr: …"),
// else the last step of the data or schema location.
func FieldOf(msg string) string {
	first, _, _ := strings.Cut(msg, "\n")
	if m := namedNodeRe.FindStringSubmatch(first); m != nil {
		return m[1]
	}
	if m := ownPrefixRe.FindStringSubmatch(first); m != nil {
		return m[1]
	}
	if m := locationRe.FindStringSubmatch(first); m != nil {
		p := predicateRe.ReplaceAllString(m[1], "")
		p = p[strings.LastIndexByte(p, '/')+1:]
		if _, name, ok := strings.Cut(p, ":"); ok {
			p = name
		}
		return p
	}
	return ""
}

// ErrorClasses are the kinds of libyang error a test can expect, by the key sonic-yang-models'
// tests use for them (eStrKey), with the strings libyang 2 puts in such an error. Classify tries
// them in this order.
var ErrorClasses = []struct {
	Key  string
	Strs []string
}{
	{"LeafRef", []string{"Invalid leafref", "no target instance"}},
	{"Mandatory", []string{"Mandatory node", "does not exist"}},
	{"UnknownElement", []string{"not found as a child"}},
	{"Duplicate", []string{"Duplicate instance"}},
	{"Range", []string{"Unsatisfied range"}},
	{"Pattern", []string{"Unsatisfied pattern"}},
	{"Length", []string{"Unsatisfied length"}},
	{"Bounds", []string{"out of type", "min/max bounds"}},
	{"NotAList", []string{"Expected JSON name/value"}},
	{"InvalidValue", []string{"Invalid"}},
	{"Must", []string{"must"}},
}

// ClassStrings returns the strings of an eStrKey, false for an unknown key.
func ClassStrings(key string) ([]string, bool) {
	for _, c := range ErrorClasses {
		if c.Key == key {
			return c.Strs, true
		}
	}
	return nil, false
}

// Classify returns the first ErrorClasses key whose strings all occur in msg, or "".
func Classify(msg string) string {
	for _, c := range ErrorClasses {
		if containsAll(msg, c.Strs) {
			return c.Key
		}
	}
	return ""
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
