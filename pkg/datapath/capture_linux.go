//go:build linux

package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// captureBacklog is how many samples wait in Samples' channel. Beyond it the reader waits for
// the consumer and the ring buffer fills (and the kernel counts what it loses).
const captureBacklog = 1024

// captureDrainTimeout bounds how long Close waits for a consumer to take the last samples.
const captureDrainTimeout = 5 * time.Second

// capturePoll is how often the reader looks at the ring buffer without being woken: the
// program wakes it only when a quarter of the ring is used.
const capturePoll = 50 * time.Millisecond

// capture hands a pcaplike job's samples from its ring buffer to Samples.
type capture struct {
	rd       *ringbuf.Reader
	ch       chan Sample
	stopping atomic.Bool
	abort    chan struct{} // closed when Close gives up waiting for the consumer
	done     chan struct{} // closed when the reader goroutine has closed ch
	dropped  atomic.Uint64 // samples read but never delivered
	once     sync.Once
}

// startCapture starts reading the job's ring buffer; Close (its undo step) stops it.
func (r *Run) startCapture() error {
	rd, err := ringbuf.NewReader(r.maps.samples)
	if err != nil {
		return fmt.Errorf("open capture ring buffer: %w", err)
	}
	c := &capture{
		rd:    rd,
		ch:    make(chan Sample, captureBacklog),
		abort: make(chan struct{}),
		done:  make(chan struct{}),
	}
	r.capture = c
	go c.run(r.jobID, r.m)
	r.push("stop capture", c.stop)
	return nil
}

func (c *capture) run(jobID string, m *Manager) {
	defer close(c.done)
	defer close(c.ch)
	clk := newClock()
	refreshed := time.Now()
	var rec ringbuf.Record
	for {
		c.rd.SetDeadline(time.Now().Add(capturePoll))
		err := c.rd.ReadInto(&rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, ringbuf.ErrFlushed):
			if c.stopping.Load() {
				return
			}
			continue
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		default:
			m.log.Warn("reading capture ring buffer", "job", jobID, "err", err)
			if c.stopping.Load() {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if time.Since(refreshed) > time.Second { // the wall clock may be stepped
			clk, refreshed = newClock(), time.Now()
		}
		s, ok := decodeSample(rec.RawSample, clk)
		if !ok {
			c.dropped.Add(1)
			continue
		}
		select {
		case c.ch <- s:
		case <-c.abort:
			c.dropped.Add(1)
		}
	}
}

// decodeSample decodes a struct sample_hdr (bpf/include/telegen.h) and the bytes after it.
func decodeSample(raw []byte, clk clock) (Sample, bool) {
	if len(raw) < sampleHdr {
		return Sample{}, false
	}
	capLen := binary.NativeEndian.Uint32(raw[12:])
	if int(capLen) > len(raw)-sampleHdr {
		return Sample{}, false
	}
	dir := HookIngress
	if raw[20] == 1 {
		dir = HookEgress
	}
	return Sample{
		Time:      clk.time(binary.NativeEndian.Uint64(raw[0:])),
		WireLen:   binary.NativeEndian.Uint32(raw[8:]),
		Ifindex:   int(binary.NativeEndian.Uint32(raw[16:])),
		Direction: dir,
		Data:      append([]byte(nil), raw[sampleHdr:sampleHdr+int(capLen)]...),
	}, true
}

// stop runs once the job is detached: it hands over what the ring buffer holds, waiting up to
// captureDrainTimeout for the consumer, then closes the channel and the reader.
func (c *capture) stop() error {
	var err error
	c.once.Do(func() {
		c.stopping.Store(true)
		if err = c.rd.Flush(); err != nil {
			err = errors.Join(fmt.Errorf("flush capture ring buffer: %w", err), c.rd.Close())
		}
		select {
		case <-c.done:
		case <-time.After(captureDrainTimeout):
			close(c.abort) // nobody takes the samples: drop them
			<-c.done
		}
		err = errors.Join(err, c.rd.Close())
	})
	return err
}

// lost counts samples that reached user space but not the consumer.
func (c *capture) lost() uint64 {
	if c == nil {
		return 0
	}
	return c.dropped.Load()
}

// Samples delivers the first bytes of sampled frames of a pcaplike job, in the order the ring
// buffer holds them, until Close, which closes the channel once the ring buffer is drained. It
// is nil when the job does not capture. Reading slower than frames arrive fills the ring
// buffer, and the kernel counts the samples it then loses (Snapshot's Capture.Lost).
func (r *Run) Samples() <-chan Sample {
	if r.capture == nil {
		return nil
	}
	return r.capture.ch
}
