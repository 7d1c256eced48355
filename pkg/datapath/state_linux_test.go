//go:build linux

package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// TestAdoptKeepsState: a restarted daemon adopts a job with everything it measured (flows,
// histograms, error counts), its sampling rate and top-K, and its capture, which goes on.
func TestAdoptKeepsState(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			p := pcapFile(t)
			first := e.manager(t, mode)
			job := Job{ID: "st", Interface: port, Ingress: true, Egress: true, TopK: 5, SampleRate: 1,
				Capture: &CaptureConfig{SnapLen: 100, MaxPackets: 1000}}
			r1 := e.start(t, first, job)
			go func() {
				for range r1.Samples() {
				}
			}()
			e.replayIngress(t)
			waitCounters(t, r1, Counters{IngressPackets: p.packets, IngressBytes: p.bytes})
			before, err := r1.Snapshot(true)
			if err != nil {
				t.Fatal(err)
			}
			if len(before.TopFlows) != 5 || before.FlowsSeen == 0 || before.Capture == nil || before.Capture.Samples != p.packets {
				t.Fatalf("before: %d flows, %d seen, capture %+v", len(before.TopFlows), before.FlowsSeen, before.Capture)
			}

			// The first process "dies": its capture reader stops (the rest stays attached).
			if err := r1.capture.stop(); err != nil {
				t.Fatal(err)
			}
			second := e.manager(t, mode)
			var r2 *Run
			e.in(t, func() {
				if r2, err = second.Adopt("st"); err != nil {
					t.Fatal(err)
				}
			})
			e.closeLater(t, r2)
			after, err := r2.Snapshot(true)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(flowKeys(after), flowKeys(before)) || after.FlowsSeen != before.FlowsSeen ||
				after.SampleRate != 1 || !reflect.DeepEqual(after.Latency, before.Latency) || !reflect.DeepEqual(after.Capture, before.Capture) {
				t.Errorf("adopted snapshot differs:\nbefore %+v\nafter  %+v", before, after)
			}
			if r2.Samples() == nil {
				t.Fatal("adopted capture job has no Samples")
			}
			e.replayEgress(t)
			for range p.packets {
				select {
				case s := <-r2.Samples():
					if s.Direction != HookEgress || len(s.Data) > 104 {
						t.Errorf("sample %s of %d bytes", s.Direction, len(s.Data))
					}
				case <-time.After(5 * time.Second):
					t.Fatal("adopted capture delivers no samples")
				}
			}
		})
	}
}

// flowKeys lists a snapshot's top flows without their times (read through another clock).
func flowKeys(s aggregate.Snapshot) []string {
	var out []string
	for _, f := range s.TopFlows {
		out = append(out, fmt.Sprintf("%s vlan %d: %d pkts %d bytes flags %#x", f.Key, f.Key.VLAN, f.Packets, f.Bytes, f.TCPFlags))
	}
	return out
}

// TestAdoptRefusesOtherLayouts: pins whose maps another build made are not adopted.
func TestAdoptRefusesOtherLayouts(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, AttachClsact)
	e.start(t, m, Job{ID: "old", Interface: port, Ingress: true})
	// Replace the pinned counters with a map of the issue-2 layout (two counters a direction).
	path := filepath.Join(e.pinDir, "old", statsPin)
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(path); err != nil {
		t.Fatal(err)
	}
	e.in(t, func() {
		if _, err := e.manager(t, AttachClsact).Adopt("old"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Adopt with old counters = %v, want ErrNotFound", err)
		}
	})
}

// TestVLANMetadataOnVeth: tagged frames arriving on a veth have their outer tag in metadata;
// the job counts it in bytes, keys flows by it, filters on it and puts it back into captures.
func TestVLANMetadataOnVeth(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			m := e.manager(t, mode)
			frames := [][]byte{
				fb{tags: [][2]uint16{{ether8021Q, 100}}, proto: 17, sport: 1, dport: 2, payload: 30}.build(),
				fb{tags: [][2]uint16{{ether8021A, 200}, {ether8021Q, 100}}, proto: 6, sport: 3, dport: 4, payload: 30}.build(),
				fb{tags: [][2]uint16{{ether8021Q, 300}}, proto: 17, sport: 5, dport: 6}.build(),
			}
			path := filepath.Join(t.TempDir(), "vlan.pcap")
			if err := writePcap(path, frames); err != nil {
				t.Fatal(err)
			}
			all := e.start(t, m, Job{ID: "all", Interface: port, Ingress: true, Capture: &CaptureConfig{SnapLen: 256}})
			v100 := e.start(t, m, Job{ID: "v100", Interface: port, Ingress: true, Filter: Filter{VLAN: 100}})
			e.peerNS.Run(t, "tcpreplay", "-q", "-i", peer, path)

			var caps [][]byte
			for range frames {
				select {
				case s := <-all.Samples():
					caps = append(caps, s.Data)
				case <-time.After(5 * time.Second):
					t.Fatal("missing samples")
				}
			}
			for i, f := range frames {
				if !bytes.Equal(caps[i], f) {
					t.Errorf("capture %d:\n got %x\nwant %x", i, caps[i], f)
				}
			}
			s, err := all.Snapshot(true)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			for _, f := range frames {
				n += len(f)
			}
			if s.Ingress.Packets != 3 || s.Ingress.Bytes != uint64(n) {
				t.Errorf("totals %+v, want 3 frames, %d bytes", s.Ingress, n)
			}
			vlans := map[uint16]bool{}
			for _, f := range s.TopFlows {
				vlans[f.Key.VLAN] = true
			}
			if !reflect.DeepEqual(vlans, map[uint16]bool{100: true, 200: true, 300: true}) {
				t.Errorf("flow VLANs %v, want 100, 200, 300", vlans)
			}
			s, err = v100.Snapshot(false)
			if err != nil {
				t.Fatal(err)
			}
			if s.Ingress.Packets != 2 || s.Filtered != 1 {
				t.Errorf("vlan 100: %+v filtered %d, want 2 and 1", s.Ingress, s.Filtered)
			}
		})
	}
}
