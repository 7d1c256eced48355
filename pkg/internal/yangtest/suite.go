package yangtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// Where the vectors live, relative to the repository root. jobs.json belongs to pkg/jobspec
// (its own tests run every case through jobspec.Parse); cases.json adds TELEGEN|global cases and
// the cases where the two validators differ by design.
const (
	JobVectorsPath = "pkg/jobspec/testdata/jobs.json"
	CasesPath      = "sonic-yang/testdata/cases.json"
)

// Tables a Case can describe.
const (
	TableJob    = "TELEGEN_JOB"
	TableGlobal = "TELEGEN"
)

// Case is one test vector, in the schema of pkg/jobspec/testdata/jobs.json, extended for
// sonic-yang/testdata/cases.json by Table, EStrKey and YANGOnly.
type Case struct {
	Desc     string            `json:"desc"`
	Table    string            `json:"table"` // TableJob (also when empty) or TableGlobal
	ID       *string           `json:"id"`    // the job's key; nil means "job1"
	Globals  map[string]string `json:"globals"`
	Fields   map[string]string `json:"fields"`
	Want     map[string]string `json:"want"`
	EField   string            `json:"eField"`
	EWhy     string            `json:"eWhy"`
	EStrKey  string            `json:"eStrKey"`
	GoOnly   string            `json:"goOnly"`
	YANGOnly string            `json:"yangOnly"`
}

// JobID is the key of the case's job.
func (c Case) JobID() string {
	if c.ID == nil {
		return "job1"
	}
	return *c.ID
}

// Global reports whether the case is a TELEGEN|global entry.
func (c Case) Global() bool { return c.Table == TableGlobal }

// Valid reports whether YANG must accept the case.
func (c Case) Valid() bool { return c.EField == "" }

// Instance is the CONFIG_DB content the case stands for, with ports as the PORT table.
func (c Case) Instance(ports []string) Instance {
	if c.Global() {
		return Instance{Ports: ports, Global: nonNil(c.Fields)}
	}
	return Instance{Ports: ports, Global: c.Globals, Jobs: []Job{{ID: c.JobID(), Fields: c.Fields}}}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// RepoRoot is the root of this repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// LoadJobVectors reads pkg/jobspec/testdata/jobs.json.
func LoadJobVectors() (map[string]Case, error) { return loadCases(JobVectorsPath) }

// LoadCases reads sonic-yang/testdata/cases.json.
func LoadCases() (map[string]Case, error) { return loadCases(CasesPath) }

func loadCases(rel string) (map[string]Case, error) {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), rel))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Doc   string          `json:"_doc"`
		Cases map[string]Case `json:"cases"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if len(doc.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", rel)
	}
	for name, c := range doc.Cases {
		switch {
		case c.Table != "" && c.Table != TableJob && c.Table != TableGlobal:
			return nil, fmt.Errorf("%s: case %s: unknown table %q", rel, name, c.Table)
		case c.Want != nil && c.EField != "":
			return nil, fmt.Errorf("%s: case %s has both want and eField", rel, name)
		case c.YANGOnly != "" && c.EField == "":
			return nil, fmt.Errorf("%s: case %s is yangOnly but names no eField", rel, name)
		case c.YANGOnly != "" && c.GoOnly != "":
			return nil, fmt.Errorf("%s: case %s is both goOnly and yangOnly", rel, name)
		}
	}
	return doc.Cases, nil
}

// AllCases returns the cases YANG judges: every case of jobs.json and of cases.json that is not
// goOnly. A name in both files is an error.
func AllCases() (map[string]Case, error) {
	jobs, err := LoadJobVectors()
	if err != nil {
		return nil, err
	}
	extra, err := LoadCases()
	if err != nil {
		return nil, err
	}
	all := make(map[string]Case, len(jobs)+len(extra))
	for name, c := range jobs {
		if c.GoOnly == "" {
			all[name] = c
		}
	}
	for name, c := range extra {
		if _, dup := jobs[name]; dup {
			return nil, fmt.Errorf("case %s is in both %s and %s", name, JobVectorsPath, CasesPath)
		}
		if c.GoOnly == "" {
			all[name] = c
		}
	}
	return all, nil
}

// GoOnlyCases returns the goOnly cases of both files: those YANG need not judge alike.
func GoOnlyCases() (map[string]Case, error) {
	out := map[string]Case{}
	for _, load := range []func() (map[string]Case, error){LoadJobVectors, LoadCases} {
		cases, err := load()
		if err != nil {
			return nil, err
		}
		for name, c := range cases {
			if c.GoOnly != "" {
				out[name] = c
			}
		}
	}
	return out, nil
}

// Ports returns the PORT table every instance carries: the ports the valid job cases name,
// sorted. A bad port in an invalid case is then refused by the leafref (no such port), which is
// what the port check means in SONiC.
func Ports(cases map[string]Case) []string {
	set := map[string]bool{}
	for _, c := range cases {
		if !c.Global() && c.Valid() && c.Fields["port"] != "" {
			set[c.Fields["port"]] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Result is one case judged by yanglint.
type Result struct {
	Name    string
	Case    Case
	Doc     []byte
	Verdict Verdict
	Err     error // running yanglint failed
}

// ValidateAll judges every case with ports as the PORT table, a few at a time, and returns the
// results sorted by name.
func (m *Model) ValidateAll(cases map[string]Case, ports []string) []Result {
	names := slices.Sorted(maps.Keys(cases))
	out := make([]Result, len(names))
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i, name := range names {
		c := cases[name]
		out[i] = Result{Name: name, Case: c, Doc: c.Instance(ports).Doc()}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *Result) {
			defer wg.Done()
			defer func() { <-sem }()
			r.Verdict, r.Err = m.Validate(r.Doc)
		}(&out[i])
	}
	wg.Wait()
	return out
}

// Expectation is one entry of sonic-yang/tests/telegen.json: sonic-yang-models' schema, where a
// case without eStrKey must load and a case with one must fail with an error containing the
// ErrorClasses strings of eStrKey and every string of eStr (here: the field the error names).
type Expectation struct {
	Desc    string   `json:"desc"`
	EStrKey string   `json:"eStrKey,omitempty"`
	EStr    []string `json:"eStr,omitempty"`
}

// Suite renders the sonic-yang-models style test pair from cases: tests/telegen.json (what each
// case expects) and tests_config/telegen.json (each case's instance document). An invalid case's
// eStrKey and eStr are taken from yanglint's error, after checking that yanglint refuses exactly
// the cases the vectors call invalid (and, where a case pins eStrKey, with that kind of error).
func (m *Model) Suite(cases map[string]Case) (tests, config []byte, err error) {
	var tb, cb bytes.Buffer
	tb.WriteString("{\n")
	cb.WriteString("{\n")
	for i, r := range m.ValidateAll(cases, Ports(cases)) {
		if r.Err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.Name, r.Err)
		}
		c, v := r.Case, r.Verdict
		e := Expectation{Desc: c.Desc}
		switch {
		case c.Valid() && !v.OK:
			return nil, nil, fmt.Errorf("%s: the vector is valid, yanglint refuses it: %s", r.Name, v.Message)
		case !c.Valid() && v.OK:
			return nil, nil, fmt.Errorf("%s: the vector is invalid (%s), yanglint accepts it", r.Name, c.EField)
		case !c.Valid() && (v.Class == "" || v.Field == ""):
			return nil, nil, fmt.Errorf("%s: yanglint error of no known kind or field: %s", r.Name, v.Message)
		case c.EStrKey != "" && v.Class != c.EStrKey:
			return nil, nil, fmt.Errorf("%s: want a %s error, yanglint says %s", r.Name, c.EStrKey, v.Message)
		case !c.Valid():
			e.EStrKey, e.EStr = v.Class, []string{v.Field}
		}
		sep := ",\n"
		if i == len(cases)-1 {
			sep = "\n"
		}
		if err := writeMember(&tb, r.Name, e, sep); err != nil {
			return nil, nil, err
		}
		if err := writeMember(&cb, r.Name, json.RawMessage(r.Doc), sep); err != nil {
			return nil, nil, err
		}
	}
	tb.WriteString("}\n")
	cb.WriteString("}\n")
	return tb.Bytes(), cb.Bytes(), nil
}

// writeMember writes `    "name": value` with value indented by four spaces, as
// sonic-yang-models' files are. json.Indent keeps member order and duplicate names.
func writeMember(b *bytes.Buffer, name string, v any, sep string) error {
	raw, ok := v.(json.RawMessage)
	if !ok {
		var enc bytes.Buffer
		e := json.NewEncoder(&enc)
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil {
			return err
		}
		raw = bytes.TrimSpace(enc.Bytes())
	}
	var ind bytes.Buffer
	if err := json.Indent(&ind, raw, "    ", "    "); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	b.WriteString("    ")
	writeString(b, name)
	b.WriteString(": ")
	b.Write(ind.Bytes())
	b.WriteString(sep)
	return nil
}
