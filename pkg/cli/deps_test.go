package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFrontEndsLinkNoKernelCode proves that the CLI and REST binaries build without the eBPF
// and netlink libraries: only telegend talks to the kernel.
func TestFrontEndsLinkNoKernelCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, cmd := range []string{"../../cmd/telegen-sonic", "../../cmd/telegen-rest"} {
		out, err := exec.Command("go", "list", "-deps", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", cmd, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 50 {
			t.Fatalf("go list -deps %s listed only %d packages", cmd, len(deps))
		}
		for _, d := range deps {
			for _, banned := range []string{"github.com/cilium/ebpf", "github.com/vishvananda/netlink",
				"github.com/vishvananda/netns", "github.com/telegen-sonic/telegen-sonic/pkg/datapath",
				"github.com/telegen-sonic/telegen-sonic/pkg/daemon", "github.com/telegen-sonic/telegen-sonic/pkg/reconciler"} {
				if d == banned || strings.HasPrefix(d, banned+"/") {
					t.Errorf("%s links %s", cmd, d)
				}
			}
		}
	}
}
