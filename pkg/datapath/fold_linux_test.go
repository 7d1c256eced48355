//go:build linux

package datapath

import (
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/telegen-sonic/telegen-sonic/pkg/datapath/internal/constfold"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// TestFoldAgrees holds each job's program with its constants folded in (as every job is
// loaded) to the program as compiled (settings.unfolded): frame for frame, every counter,
// flow, error and latency sample must agree.
func TestFoldAgrees(t *testing.T) {
	jobs := agreementJobs()
	maps.Copy(jobs, map[string]Job{
		"erspan, any session": {ERSPAN: &ERSPAN{SessionID: -1}},
		"erspan session 5":    {ERSPAN: &ERSPAN{SessionID: 5}, Filter: Filter{IPProtos: []uint8{6}}},
		"pcaplike":            benchJob(benchFrames[0].frame, 1, pcaplikeCapture, false),
		"top 3, no filter":    {TopK: 3},
	})
	requireAgreement(t, agreementFrames(t), jobs, "folded", "unfolded", func(s *settings) { s.unfolded = true })
}

// TestFoldRemovesConfigTests checks that folding does what it is for: a job's program no
// longer reads the settings it was specialized for, and carries no function its features do
// not use.
func TestFoldRemovesConfigTests(t *testing.T) {
	for name, job := range map[string]Job{
		"every filter, unsampled": benchJob(benchFrames[0].frame, 1<<24, noCapture, false),
		"no filter":               {},
		"pcaplike":                benchJob(benchFrames[0].frame, 1, pcaplikeCapture, false),
	} {
		t.Run(name, func(t *testing.T) {
			spec, err := loadTelegen()
			if err != nil {
				t.Fatal(err)
			}
			job.ID, job.Interface, job.Ingress = "t", "test", true
			if err := job.validate(); err != nil {
				t.Fatal(err)
			}
			for n, v := range job.consts(job.settings()) {
				if err := spec.Variables[n].Set(v); err != nil {
					t.Fatal(err)
				}
			}
			ro, err := constfold.ReadOnlyData(spec)
			if err != nil {
				t.Fatal(err)
			}
			insns, st, err := constfold.Fold(spec.Programs["telegen_tc_in"].Instructions, ro)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", st)
			settled := map[uint64]string{}
			for _, n := range []string{"cfg_filters", "cfg_features", "cfg_sample_rate", "cfg_src4", "cfg_dst4_mask", "cfg_erspan_session"} {
				settled[uint64(spec.Variables[n].Offset)] = n
			}
			funcs := map[string]bool{}
			for _, ins := range insns {
				if ins.Symbol() != "" {
					funcs[ins.Symbol()] = true
				}
				if ins.OpCode == asm.LoadImmOp(asm.DWord) && ins.Src == asm.PseudoMapValue && ins.Reference() == ".rodata" {
					if n, ok := settled[uint64(ins.Constant)>>32]; ok {
						t.Errorf("still reads %s: %v", n, ins)
					}
				}
			}
			if funcs["tg_erspan"] {
				t.Error("tg_erspan kept in a job without ERSPAN")
			}
			if funcs["tg_capture"] != (job.Capture != nil) {
				t.Errorf("tg_capture kept: %v, the job captures: %v", funcs["tg_capture"], job.Capture != nil)
			}
			if st.After > st.Before*3/4 {
				t.Errorf("folded to %d of %d instructions", st.After, st.Before)
			}
		})
	}
}

// TestFoldRefusalLoadsAsCompiled: a program the folding cannot handle (here one that starts
// with a long jump, which it refuses) is loaded as compiled, and the job runs and counts.
func TestFoldRefusalLoadsAsCompiled(t *testing.T) {
	testenv.RequireRoot(t)
	spec, err := loadTelegen()
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range spec.Programs {
		first := ps.Instructions[0]
		gotol := asm.Instruction{OpCode: asm.OpCode(asm.Jump32Class).SetJumpOp(asm.Ja)}.WithMetadata(first.Metadata)
		ps.Instructions = append(asm.Instructions{gotol, first.WithMetadata(asm.Metadata{}).WithSource(first.Source())}, ps.Instructions[1:]...)
	}
	var logged strings.Builder
	m := &Manager{spec: spec, log: slog.New(slog.NewTextHandler(&logged, nil))}
	job := Job{ID: "t", Interface: "test", Ingress: true}
	if err := job.validate(); err != nil {
		t.Fatal(err)
	}
	set := job.settings()
	coll, err := m.load(job, set, ModeClsact)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	if !strings.Contains(logged.String(), "constants not folded") {
		t.Errorf("no warning logged: %q", logged.String())
	}
	p := &progUnderTest{t: t, prog: coll.Programs[progName(ModeClsact, HookIngress)],
		run: &Run{m: m, set: set, maps: mapsOf(coll.Maps)}}
	p.send(benchFrames[0].frame.build())
	if st := p.stats(); st.Packets != 1 {
		t.Errorf("counted %+v, want one frame", st)
	}
}
