package jobspec

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// encodeFields and decodeFields carry a field map through the fuzzer as "name=value" lines.
func encodeFields(f map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f)) {
		b.WriteString(k + "=" + f[k] + "\n")
	}
	return b.String()
}

func decodeFields(s string) map[string]string {
	f := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		f[k] = v
	}
	return f
}

// FuzzParse checks that Parse never panics, that every error is a *FieldError naming a field,
// that every accepted spec survives Fields -> Parse unchanged, and that any id yields a
// well-formed mirror session name.
func FuzzParse(f *testing.F) {
	for _, c := range loadCases(f) {
		if c.Globals == nil {
			f.Add(c.id(), encodeFields(c.Fields))
		}
	}
	f.Add("j", "port=Ethernet0\nl4_dport@=0-0,65535-65535,1-2\nsrc_cidr=::ffff:1.2.3.4\ndst_cidr=::/0\n")
	f.Add("j", "port=e\nexpires_at=0001-01-01T00:00:00Z\n")
	g := DefaultGlobals()
	f.Fuzz(func(t *testing.T, id, raw string) {
		if name := MirrorSessionName(id); len(name) > 32 || !sonicSessionName.MatchString(name) {
			t.Fatalf("MirrorSessionName(%q) = %q", id, name)
		}
		fields := decodeFields(raw)
		s, err := Parse(id, fields, g)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Why == "" {
				t.Fatalf("Parse(%q, %q) error %#v is not a *FieldError naming a field", id, fields, err)
			}
			return
		}
		canon := s.Fields()
		back, err := Parse(id, canon, g)
		if err != nil {
			t.Fatalf("Parse(%q, %q) ok, but its Fields %q fail: %v", id, fields, canon, err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", fields, back, s)
		}
		if again := back.Fields(); !maps.Equal(again, canon) {
			t.Fatalf("Fields not canonical: %q then %q", canon, again)
		}
	})
}
