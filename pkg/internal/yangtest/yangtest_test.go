package yangtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite sonic-yang/tests/telegen.json and tests_config/telegen.json from the vectors")

// The sonic-yang-models style pair, relative to the model directory.
const (
	testsFile  = "tests/telegen.json"
	configFile = "tests_config/telegen.json"
)

func TestCompile(t *testing.T) {
	m := Open(t)
	if err := m.Compile(); err != nil {
		t.Fatal(err)
	}
}

// TestNumericFieldsMatchModel keeps Doc's list of number-encoded leaves equal to the integer
// (and union) leaves of the model, so a changed type cannot silently turn a vector's value into
// the wrong JSON kind.
func TestNumericFieldsMatchModel(t *testing.T) {
	tree, err := Open(t).Tree()
	if err != nil {
		t.Fatal(err)
	}
	leafRe := regexp.MustCompile(`^\s*[|\s]*\+--rw (\S+?)[?*]?\s+(\S+)$`)
	seen := map[string]string{}
	for _, l := range strings.Split(tree, "\n") {
		if m := leafRe.FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[2], "[") {
			seen[m[1]] = m[2]
		}
	}
	if len(seen) < 20 {
		t.Fatalf("parsed only %d leaves from the tree:\n%s", len(seen), tree)
	}
	intRe := regexp.MustCompile(`^u?int(8|16|32|64)$`)
	for name, typ := range seen {
		if intRe.MatchString(typ) && !numericFields[name] {
			t.Errorf("leaf %s is %s in the model but not in numericFields", name, typ)
		}
	}
	for name := range numericFields {
		typ, ok := seen[name]
		if !ok {
			t.Errorf("numericFields has %s, the model has no such leaf", name)
		} else if !intRe.MatchString(typ) && typ != "union" {
			t.Errorf("numericFields has %s, but the model's type is %s", name, typ)
		}
	}
}

func TestDoc(t *testing.T) {
	in := Instance{
		Ports:  []string{"Ethernet0"},
		Global: map[string]string{"max_duration_sec": "60"},
		Jobs: []Job{{ID: "j<1>", Fields: map[string]string{
			"port": "Ethernet0", "vlan": "010", "dscp@": "46,0", "ip_proto@": "tcp,6", "l4_sport@": "",
			"sample_rate": "1.5", "otlp_export": "true", "job_id": "x", "vlan@": "7",
		}}},
	}
	want := `{"sonic-port:sonic-port":{"sonic-port:PORT":{"PORT_LIST":[{"name":"Ethernet0","lanes":"0","speed":40000}]}},` +
		`"sonic-telegen:sonic-telegen":{"sonic-telegen:TELEGEN":{"global":{"max_duration_sec":60}},` +
		`"sonic-telegen:TELEGEN_JOB":{"TELEGEN_JOB_LIST":[{"job_id":"j<1>","dscp":[46,0],"ip_proto":["tcp",6],` +
		`"job_id":"x","l4_sport":[],"otlp_export":"true","port":"Ethernet0","sample_rate":1.5,"vlan":10,"vlan":[7]}]}}}`
	if got := string(in.Doc()); got != want {
		t.Errorf("Doc:\n got %s\nwant %s", got, want)
	}
}

func TestFieldOfAndClassify(t *testing.T) {
	for _, c := range []struct{ msg, field, class string }{
		{`Unsatisfied range - value "0" is out of the allowed range. (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']/vlan", line number 1.)`, "vlan", "Range"},
		{`Node "filter" not found as a child of "TELEGEN_JOB_LIST" node. (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']", line number 1.)`, "filter", "UnknownElement"},
		{`Mandatory node "port" instance does not exist. (Schema location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST/port".)`, "port", "Mandatory"},
		{`Duplicate instance of "job_id". (Data location "/sonic-telegen:TELEGEN_JOB_LIST[job_id='job1'][job_id='x']/job_id", line number 1.)`, "job_id", "Duplicate"},
		{`l4_sport: a range start must not exceed its end (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']/l4_sport[.='2000-1000']".)`, "l4_sport", "Must"},
		{`default_duration_sec: must not exceed max_duration_sec (Data location "/sonic-telegen:sonic-telegen/TELEGEN/global".)`, "default_duration_sec", "Must"},
		{`Invalid leafref value "Ethernet 0" - no target instance "/port:sonic-port/port:PORT/port:PORT_LIST/port:name" with the same value. (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']/port".)`, "port", "LeafRef"},
		{`Value "-1" is out of type uint16 min/max bounds. (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']/vlan", line number 1.)`, "vlan", "Bounds"},
		{`Invalid union value "gre" - no matching subtype found. (Data location "/sonic-telegen:sonic-telegen/TELEGEN_JOB/TELEGEN_JOB_LIST[job_id='job1']/ip_proto", line number 1.)`, "ip_proto", "InvalidValue"},
	} {
		if got := FieldOf(c.msg); got != c.field {
			t.Errorf("FieldOf(%.60q…) = %q, want %q", c.msg, got, c.field)
		}
		if got := Classify(c.msg); got != c.class {
			t.Errorf("Classify(%.60q…) = %q, want %q", c.msg, got, c.class)
		}
	}
}

// TestSuiteUpToDate regenerates the sonic-yang-models style pair from the vectors and compares it
// with the committed files (go test -run TestSuiteUpToDate -update rewrites them).
func TestSuiteUpToDate(t *testing.T) {
	m := Open(t)
	cases, err := AllCases()
	if err != nil {
		t.Fatal(err)
	}
	tests, config, err := m.Suite(cases)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string][]byte{testsFile: tests, configFile: config} {
		path := filepath.Join(m.Dir, rel)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sonic-yang/%s is stale: run go test ./pkg/internal/yangtest -run TestSuiteUpToDate -update", rel)
		}
	}
}

// TestSuite runs the committed pair the way sonic-yang-models' test_yang_model.py does: every
// case of tests_config loads when its tests entry has no eStrKey, and fails with an error
// containing the eStrKey strings and every eStr otherwise.
func TestSuite(t *testing.T) {
	m := Open(t)
	var tests map[string]Expectation
	readJSON(t, filepath.Join(m.Dir, testsFile), &tests)
	var configs map[string]json.RawMessage
	readJSON(t, filepath.Join(m.Dir, configFile), &configs)
	if len(tests) == 0 {
		t.Fatal("no tests")
	}
	if a, b := slices.Sorted(maps.Keys(tests)), slices.Sorted(maps.Keys(configs)); !slices.Equal(a, b) {
		t.Fatalf("%s and %s name different cases:\n%v\n%v", testsFile, configFile, a, b)
	}
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		e := tests[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := m.Validate(configs[name])
			if err != nil {
				t.Fatal(err)
			}
			if e.EStrKey == "" {
				if !v.OK {
					t.Fatalf("%s: want success, yanglint says %s", e.Desc, v.Message)
				}
				return
			}
			strs, ok := ClassStrings(e.EStrKey)
			if !ok {
				t.Fatalf("unknown eStrKey %q", e.EStrKey)
			}
			if v.OK {
				t.Fatalf("%s: want a %s error, yanglint accepts it", e.Desc, e.EStrKey)
			}
			for _, s := range append(slices.Clone(strs), e.EStr...) {
				if !strings.Contains(v.Message, s) {
					t.Errorf("%s: error %q lacks %q", e.Desc, v.Message, s)
				}
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
