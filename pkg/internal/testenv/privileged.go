// Package testenv owns the real parts tests stand on: root checks, redis-server instances,
// network namespaces and veth ports, and the external judges (tshark, tcpreplay).
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where nothing privileged may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test outside CI and fails it in CI, so a missing privilege or tool can never
// turn a CI run green by silence.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: this test must run, but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (fails under CI) unless the test runs as root, which eBPF, tc and
// network-namespace tests need.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireTool returns the path of an external program, skipping (failing under CI) when absent.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "needs %s in PATH: %v", name, err)
	}
	return p
}
