package jobspec

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/yangtest"
)

// TestYANGAgreesWithParse runs the shared vectors through both validators: the YANG model
// (sonic-yang/sonic-telegen.yang, with yanglint) and this package. Every case of
// testdata/jobs.json that is not goOnly, and every case of sonic-yang/testdata/cases.json, must
// be accepted by both or refused by both, and YANG's error must name the field jobspec names
// (without the list suffix "@"). When an entry has several bad fields the two may report
// different ones (jobspec the one that sorts first, libyang the first its parse meets, and a
// missing port only after every value has parsed), so YANG may also name any field jobspec
// refuses on its own. yangOnly cases are those jobspec accepts by design.
func TestYANGAgreesWithParse(t *testing.T) {
	m := yangtest.Open(t)
	cases, err := yangtest.AllCases()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.ValidateAll(cases, yangtest.Ports(cases)) {
		t.Run(r.Name, func(t *testing.T) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			c, v := r.Case, r.Verdict
			goErr := goVerdict(t, c)
			if c.YANGOnly != "" {
				if goErr != nil {
					t.Errorf("yangOnly case: jobspec should accept it (%s), but: %v", c.YANGOnly, goErr)
				}
				if v.OK || v.Field != strings.TrimSuffix(c.EField, ListSuffix) {
					t.Errorf("yangOnly case: want YANG to refuse %s, got %+v", c.EField, v)
				}
				return
			}
			checkGoExpectation(t, c, goErr)
			switch {
			case goErr == nil && !v.OK:
				t.Fatalf("jobspec accepts, YANG refuses: %s\ninstance: %s", v.Message, r.Doc)
			case goErr != nil && v.OK:
				t.Fatalf("jobspec refuses (%v), YANG accepts\ninstance: %s", goErr, r.Doc)
			case goErr == nil:
				return
			}
			var fe *FieldError
			if !errors.As(goErr, &fe) {
				t.Fatalf("jobspec error %v is not a *FieldError", goErr)
			}
			if v.Field == strings.TrimSuffix(fe.Field, ListSuffix) {
				return
			}
			if !refusedAlone(c, v.Field) {
				t.Errorf("jobspec names %q (%v), YANG names %q, which jobspec accepts on its own: %s",
					fe.Field, goErr, v.Field, v.Message)
			}
		})
	}
}

// TestYANGGoOnlyCases covers the goOnly cases of both vector files, which YANG is not required to
// judge alike: jobspec must meet each case's expectation (jobs.json's are also checked by
// TestParseCases), and YANG's verdict is logged, to show which goOnly marks are still needed.
func TestYANGGoOnlyCases(t *testing.T) {
	m := yangtest.Open(t)
	goOnly, err := yangtest.GoOnlyCases()
	if err != nil {
		t.Fatal(err)
	}
	all, err := yangtest.AllCases()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.ValidateAll(goOnly, yangtest.Ports(all)) {
		t.Run(r.Name, func(t *testing.T) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			checkGoExpectation(t, r.Case, goVerdict(t, r.Case))
			t.Logf("YANG agrees: %v; yanglint: %q; goOnly because: %s",
				r.Verdict.OK == r.Case.Valid(), r.Verdict.Message, r.Case.GoOnly)
		})
	}
}

// goVerdict is jobspec's judgement of a case: GlobalsFromFields for TELEGEN|global, else Parse
// with the case's globals.
func goVerdict(t *testing.T, c yangtest.Case) error {
	t.Helper()
	if c.Global() {
		_, err := GlobalsFromFields(c.Fields)
		return err
	}
	g, err := GlobalsFromFields(c.Globals)
	if err != nil {
		t.Fatalf("globals of the case: %v", err)
	}
	_, err = Parse(c.JobID(), c.Fields, g)
	return err
}

// checkGoExpectation checks jobspec against the case's own expectation (jobs.json's cases are
// checked in depth by TestParseCases; this covers sonic-yang/testdata/cases.json).
func checkGoExpectation(t *testing.T, c yangtest.Case, goErr error) {
	t.Helper()
	if c.Valid() {
		if goErr != nil {
			t.Fatalf("jobspec refuses a valid vector: %v", goErr)
		}
		return
	}
	var fe *FieldError
	if !errors.As(goErr, &fe) || fe.Field != c.EField || !strings.Contains(fe.Why, c.EWhy) {
		t.Fatalf("jobspec says %v; the vector wants field %q with %q", goErr, c.EField, c.EWhy)
	}
}

// refusedAlone reports whether jobspec refuses field (a YANG leaf name: no "@") of the case on
// its own, beside a valid port.
func refusedAlone(c yangtest.Case, field string) bool {
	if c.Global() {
		v, ok := c.Fields[field]
		if !ok {
			return false
		}
		_, err := GlobalsFromFields(map[string]string{field: v})
		var fe *FieldError
		return errors.As(err, &fe) && fe.Field == field
	}
	if field == FieldJobID && ValidJobID(c.JobID()) != nil {
		return true
	}
	alone := map[string]string{FieldPort: "Ethernet0"}
	found := false
	for _, name := range slices.Sorted(maps.Keys(c.Fields)) {
		if strings.TrimSuffix(name, ListSuffix) == field {
			alone[name] = c.Fields[name]
			found = true
		}
	}
	if !found {
		return field == FieldPort // a missing port is refused on its own
	}
	_, err := Parse(c.JobID(), alone, DefaultGlobals())
	var fe *FieldError
	return errors.As(err, &fe) && strings.TrimSuffix(fe.Field, ListSuffix) == field
}
