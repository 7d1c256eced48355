//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// TestKernelLoadFolded loads both hooks' programs of representative jobs as telegend does, on
// the clsact path, with each job's constants folded into its instructions, and reports what
// the verifier processed. Here it is one more load test. scripts/kernelcheck-vm.sh (part
// of make kernelcheck) runs this test binary as the init of a VM booted with Debian's 6.1
// kernel, SONiC's, where it matters: the shared kernelcheck verifies the object as compiled,
// with constants it is given; this verifies what telegend actually loads there.
func TestKernelLoadFolded(t *testing.T) {
	testenv.RequireRoot(t)
	var uts unix.Utsname
	unix.Uname(&uts)
	t.Logf("kernel %s", unix.ByteSliceToString(uts.Release[:]))

	spec, err := loadTelegen()
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{spec: spec, log: testLogger(t)}
	jobs := agreementJobs()
	maps.Copy(jobs, map[string]Job{
		"erspan, any session":              {ERSPAN: &ERSPAN{SessionID: -1}},
		"erspan session 7, every filter":   withERSPAN(benchJob(benchFrames[2].frame, 100, pcaplikeCapture, false), 7),
		"pcaplike, every filter, 1 in 100": benchJob(benchFrames[2].frame, 100, pcaplikeCapture, false),
		"pcaplike uncapped":                benchJob(benchFrames[0].frame, 1, uncappedCapture, false),
		"top 10000":                        {TopK: 10000},
		// Each filter kind alone: the verifier walks what a job uses, nothing else.
		"src ports":     {Filter: Filter{SrcPorts: []PortRange{{1024, 65535}}}},
		"dst ports":     {Filter: Filter{DstPorts: []PortRange{{443, 443}, {8000, 9000}}}},
		"protocols":     {Filter: Filter{IPProtos: []uint8{1, 6, 17, 58, 132}}},
		"dscp":          {Filter: Filter{DSCPs: []uint8{0, 46}}},
		"dst ipv4":      {Filter: Filter{DstCIDR: netip.MustParsePrefix("192.0.2.0/24")}},
		"src ipv6":      {Filter: Filter{SrcCIDR: netip.MustParsePrefix("2001:db8::/32")}},
		"dst ipv6":      {Filter: Filter{DstCIDR: netip.MustParsePrefix("2001:db8:1::/48")}},
		"vlan, erspan":  {Filter: Filter{VLAN: 10}, ERSPAN: &ERSPAN{SessionID: 3}},
		"ports, erspan": {Filter: Filter{SrcPorts: []PortRange{{1, 1023}}, DstPorts: []PortRange{{53, 53}}}, ERSPAN: &ERSPAN{SessionID: -1}},
		// Capture lengths at their bounds, and sampling.
		"pcaplike, longest snap":  {Capture: &CaptureConfig{SnapLen: MaxSnapLen, MaxPackets: 10, RatePPS: 1}},
		"pcaplike, shortest snap": {Capture: &CaptureConfig{SnapLen: 1}},
		"1 in 1000":               {SampleRate: 1000, Filter: Filter{DstPorts: []PortRange{{80, 80}}}},
	})
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		job := jobs[name]
		job.ID, job.Interface, job.Ingress, job.Egress = "k", "lo", true, true
		if err := job.validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		coll, err := m.load(job, job.settings(), ModeClsact)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			if ve := (*ebpf.VerifierError)(nil); errors.As(err, &ve) {
				t.Logf("verifier log, last lines:\n%s", strings.Join(ve.Log[max(0, len(ve.Log)-40):], "\n"))
			}
			continue
		}
		for _, pn := range slices.Sorted(maps.Keys(coll.Programs)) {
			n := uint32(0)
			if info, err := coll.Programs[pn].Info(); err == nil {
				n, _ = info.VerifiedInstructions()
			}
			t.Logf("%s: %s loaded, %d instructions verified", name, pn, n)
		}
		if len(coll.Programs) != 2 {
			t.Errorf("%s: %d programs loaded, want both hooks'", name, len(coll.Programs))
		}
		coll.Close()
	}
}

func withERSPAN(j Job, session int) Job {
	j.ERSPAN = &ERSPAN{SessionID: session}
	return j
}

// vmInit mounts what the tests need when the test binary is a VM's init (scripts/kernelcheck-vm.sh),
// where nothing is mounted yet.
func vmInit() error {
	if os.Getpid() != 1 {
		return nil
	}
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"bpf", "/sys/fs/bpf"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	return nil
}
