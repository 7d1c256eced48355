//go:build linux

package datapath

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// progUnderTest is one program instance built for a job, run with BPF_PROG_TEST_RUN, and a Run
// over its maps to read what it measured.
type progUnderTest struct {
	t    testing.TB
	prog *ebpf.Program
	run  *Run
}

// loadProg loads the clsact program of a hook (HookIngress or HookEgress) with job's
// constants and map sizes, not attached anywhere.
func loadProg(t testing.TB, job Job, hook string) *progUnderTest {
	t.Helper()
	return loadProgWith(t, job, hook, nil)
}

// loadProgWith is loadProg with the job's settings changed by tweak first.
func loadProgWith(t testing.TB, job Job, hook string, tweak func(*settings)) *progUnderTest {
	t.Helper()
	testenv.RequireRoot(t)
	spec, err := loadTelegen()
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{spec: spec, log: testLogger(t)}
	if job.ID == "" {
		job.ID = "t"
	}
	job.Interface = "test"
	job.Ingress, job.Egress = hook == HookIngress, hook == HookEgress
	if err := job.validate(); err != nil {
		t.Fatal(err)
	}
	set := job.settings()
	if tweak != nil {
		tweak(&set)
	}
	coll, err := m.load(job, set, ModeClsact)
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{m: m, jobID: job.ID, iface: "test", set: set, maps: mapsOf(coll.Maps)}
	if set.capture != nil {
		if err := r.startCapture(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := r.undoAll(); err != nil {
			t.Error(err)
		}
		coll.Close()
	})
	return &progUnderTest{t: t, prog: coll.Programs[progName(ModeClsact, hook)], run: r}
}

// skbCtx is the part of struct __sk_buff that BPF_PROG_TEST_RUN lets a test set.
type skbCtx struct {
	gsoSegs uint32
	ifindex uint32
}

func (c skbCtx) bytes() []byte {
	b := make([]byte, 192) // sizeof(struct __sk_buff)
	binary.NativeEndian.PutUint32(b[40:], c.ifindex)
	binary.NativeEndian.PutUint32(b[164:], c.gsoSegs)
	return b
}

// send runs the program on each frame once.
func (p *progUnderTest) send(frames ...[]byte) {
	p.t.Helper()
	for _, f := range frames {
		p.sendCtx(f, skbCtx{}, 1)
	}
}

func (p *progUnderTest) sendCtx(frame []byte, c skbCtx, repeat uint32) {
	p.t.Helper()
	opts := &ebpf.RunOptions{Data: frame, Repeat: repeat}
	if c != (skbCtx{}) {
		opts.Context = c.bytes()
	}
	ret, err := p.prog.Run(opts)
	if err != nil {
		p.t.Fatalf("run on %d bytes: %v", len(frame), err)
	}
	if int32(ret) != -1 {
		p.t.Fatalf("returned %d, want -1", int32(ret))
	}
}

func (p *progUnderTest) snap(detail bool) aggregate.Snapshot {
	p.t.Helper()
	s, err := p.run.Snapshot(detail)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

func (p *progUnderTest) stats() telegenDirStats {
	p.t.Helper()
	st, err := p.run.readStats()
	if err != nil {
		p.t.Fatal(err)
	}
	var sum telegenDirStats
	addStats(&sum, st[0])
	addStats(&sum, st[1])
	return sum
}
