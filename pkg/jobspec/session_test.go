package jobspec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// sonicSessionName is the MIRROR_SESSION key pattern of sonic-mirror-session.yang.
var sonicSessionName = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_]{0,31}$`)

func checkSessionName(t *testing.T, id, name string) {
	t.Helper()
	if len(name) > 32 || !sonicSessionName.MatchString(name) || !strings.HasPrefix(name, SessionPrefix) {
		t.Errorf("MirrorSessionName(%q) = %q: not a telegen-owned SONiC session name", id, name)
	}
	if again := MirrorSessionName(id); again != name {
		t.Errorf("MirrorSessionName(%q) unstable: %q then %q", id, name, again)
	}
}

func TestMirrorSessionName(t *testing.T) {
	long := "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"
	for _, c := range []struct{ id, want string }{
		{"job1", "telegen_job1"},
		{"A_b-9", "telegen_A_b-9"},
		{strings.Repeat("x", 24), "telegen_" + strings.Repeat("x", 24)},
		// Longer than 24, or with '.', or (defensively) invalid: prefix + 15 + "-" + 8 hex.
		{strings.Repeat("x", 25), "telegen_" + strings.Repeat("x", 15) + "-"},
		{long, "telegen_3f2b8c1e-9a4d-4-3a416e8a"},
		{"job.1", "telegen_job-1-"},
		{"a b|c", "telegen_a-b-c-"},
		{"", "telegen_-"},
	} {
		got := MirrorSessionName(c.id)
		checkSessionName(t, c.id, got)
		if strings.HasSuffix(c.want, "-") {
			if !strings.HasPrefix(got, c.want) || len(got) != len(c.want)+8 {
				t.Errorf("MirrorSessionName(%q) = %q, want %q + 8 hex digits", c.id, got, c.want)
			}
		} else if got != c.want {
			t.Errorf("MirrorSessionName(%q) = %q, want %q", c.id, got, c.want)
		}
	}
	// Ids that '.'-to-'-' mapping or truncation would merge keep distinct names.
	pairs := [][2]string{
		{"a.b", "a-b"},
		{long, long[:35] + "0"},
		{strings.Repeat("y", 40), strings.Repeat("y", 41)},
		{strings.Repeat("z", 25), strings.Repeat("z", 24)},
	}
	for _, p := range pairs {
		if a, b := MirrorSessionName(p[0]), MirrorSessionName(p[1]); a == b {
			t.Errorf("%q and %q share session name %q", p[0], p[1], a)
		}
	}
	// Many long ids with one prefix: all distinct and well-formed.
	seen := map[string]string{}
	for i := range 20000 {
		id := fmt.Sprintf("telemetry-job-for-ethernet-%d", i)
		name := MirrorSessionName(id)
		if len(name) > 32 || !sonicSessionName.MatchString(name) {
			t.Fatalf("MirrorSessionName(%q) = %q", id, name)
		}
		if other, dup := seen[name]; dup {
			t.Fatalf("%q and %q share session name %q", id, other, name)
		}
		seen[name] = id
	}
}

func TestValidJobID(t *testing.T) {
	for _, id := range []string{"a", "0", "job-1", "a_b.c-d", strings.Repeat("a", 64)} {
		if err := ValidJobID(id); err != nil {
			t.Errorf("ValidJobID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", "_a", ".a", "a b", "a|b", "a:b", "é", strings.Repeat("a", 65)} {
		var fe *FieldError
		if err := ValidJobID(id); !errors.As(err, &fe) || fe.Field != "job_id" {
			t.Errorf("ValidJobID(%q) = %v; want a *FieldError on job_id", id, err)
		}
	}
}
