package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/pcapng"
)

// captureFlushInterval bounds how long a sample waits in the writer's buffer.
const captureFlushInterval = 500 * time.Millisecond

// captureFileMode lets the group (e.g. the REST shim serving results?format=pcap) read a
// capture; packet contents are not for everyone.
const captureFileMode = 0o640

// captureLimits are user space's caps on a pcaplike capture, a second line behind the kernel's
// (snap length, sample rate, ring size). A zero cap is no cap. Once any cap is reached the file
// is full: every later sample is counted as dropped, so the file holds a gap-free prefix of the
// samples the kernel delivered.
type captureLimits struct {
	SnapLen     uint32 // bytes kept of each packet (0: pcapng.DefaultSnapLen)
	MaxPackets  uint64 // packets in the file
	MaxBytes    uint64 // captured packet bytes in the file (sum of captured lengths)
	MaxFileSize int64  // size of the file, headers and blocks included
	// Resume carries on the file a killed daemon left at path+".tmp" (an adopted job): its
	// complete blocks are kept and count against the caps, a block cut short is dropped, and
	// the new samples follow in a section of their own. Without one the file starts afresh.
	Resume bool
}

// captureStats is what a capture adds to the job's result.
type captureStats struct {
	File    string // the finished file; "" when none was kept
	Packets uint64 // packets in the file
	Bytes   uint64 // captured packet bytes in the file
	Dropped uint64 // samples received but not written: a cap was reached, or writing failed
}

// Fields are the result fields pcap_file, pcap_packets, pcap_bytes and pcap_dropped.
func (s captureStats) Fields() map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	return map[string]string{
		"pcap_file":    s.File,
		"pcap_packets": u(s.Packets),
		"pcap_bytes":   u(s.Bytes),
		"pcap_dropped": u(s.Dropped),
	}
}

// capturePath is where a job's capture is kept: <dir>/<job>.pcapng. Job ids are validated
// (jobspec.ValidJobID), so the name stays inside dir.
func capturePath(dir, jobID string) string { return filepath.Join(dir, jobID+".pcapng") }

// writeCapture writes the samples it receives to a pcapng file at path until samples is
// closed, then makes the file visible at path atomically (written as path+".tmp", synced,
// renamed, directory synced). It always drains samples until they close, so the producer never
// blocks on it, whatever happens to the file. ifName names an ifindex for the file's interface
// blocks (nil: "if<N>").
//
// When ctx ends first, or writing fails, nothing is left at path+".tmp" and the returned stats
// have File "" and count the samples not kept as dropped; an earlier file at path is then left
// as it was. Otherwise the stats name path.
func writeCapture(ctx context.Context, path string, samples <-chan pcapng.Packet, lim captureLimits, ifName func(int) string) (captureStats, error) {
	var st captureStats
	tmp := path + ".tmp"
	// drain counts what is left of the stream once the file is abandoned.
	drain := func(err error) (captureStats, error) {
		st.Dropped += st.Packets
		st.Packets, st.Bytes = 0, 0
		for {
			select {
			case _, ok := <-samples:
				if !ok {
					return st, err
				}
				st.Dropped++
			case <-ctx.Done():
				return st, errors.Join(err, ctx.Err())
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return drain(fmt.Errorf("capture %s: %w", path, err))
	}
	var (
		f    *os.File
		base int64 // bytes of the file a previous daemon wrote, kept
		err  error
	)
	if lim.Resume {
		f, base, err = resumeCapture(tmp, &st)
	} else {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, captureFileMode)
	}
	if err != nil {
		return drain(fmt.Errorf("capture %s: %w", path, err))
	}
	abandon := func(err error) (captureStats, error) {
		f.Close()
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
		return drain(err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	w, err := pcapng.NewWriter(bw, pcapng.Options{SnapLen: lim.SnapLen, Application: "telegen-sonic", InterfaceName: ifName})
	if err != nil {
		return abandon(fmt.Errorf("capture %s: %w", path, err))
	}
	full := false
	// What is buffered reaches the file at least this often, so that a daemon killed mid-job
	// loses at most that much of its capture (an adopting daemon carries on the file).
	flush := time.NewTicker(captureFlushInterval)
	defer flush.Stop()
	for {
		var p pcapng.Packet
		var ok bool
		select {
		case p, ok = <-samples:
		case <-flush.C:
			if err := bw.Flush(); err != nil {
				return abandon(fmt.Errorf("capture %s: %w", path, err))
			}
			continue
		case <-ctx.Done():
			return abandon(fmt.Errorf("capture %s: %w", path, ctx.Err()))
		}
		if !ok {
			break
		}
		capLen := uint64(w.CapturedLen(p))
		full = full ||
			(lim.MaxPackets > 0 && st.Packets >= lim.MaxPackets) ||
			(lim.MaxBytes > 0 && st.Bytes+capLen > lim.MaxBytes) ||
			(lim.MaxFileSize > 0 && base+w.Written()+w.SizeOf(p) > lim.MaxFileSize)
		if full {
			st.Dropped++
			continue
		}
		if err := w.WritePacket(p); err != nil {
			st.Dropped++
			return abandon(fmt.Errorf("capture %s: %w", path, err))
		}
		st.Packets++
		st.Bytes += capLen
	}
	if err := bw.Flush(); err != nil {
		return abandon(fmt.Errorf("capture %s: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return abandon(fmt.Errorf("capture %s: %w", path, err))
	}
	if err := f.Close(); err != nil {
		return abandon(fmt.Errorf("capture %s: %w", path, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return abandon(fmt.Errorf("capture %s: %w", path, err))
	}
	st.File = path
	// The file is complete and in place; only its durability across a crash is in doubt if the
	// directory cannot be synced, so that is reported with the stats, not instead of them.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return st, fmt.Errorf("capture %s: sync directory: %w", path, err)
	}
	return st, nil
}

// resumeCapture opens the file a killed daemon was writing at tmp, cuts it after its last
// complete block and counts what it holds into st; the returned file is positioned at its end
// and base is its length. No file, or one that is not a capture, gives a new empty file.
func resumeCapture(tmp string, st *captureStats) (f *os.File, base int64, err error) {
	f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, captureFileMode)
	if err != nil {
		return nil, 0, err
	}
	c, serr := pcapng.Scan(bufio.NewReaderSize(f, 64<<10))
	if serr != nil {
		c = pcapng.Contents{} // not ours to keep: start afresh
	}
	if err := f.Truncate(c.End); err != nil {
		f.Close()
		return nil, 0, err
	}
	if _, err := f.Seek(c.End, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	st.Packets, st.Bytes = c.Packets, c.Bytes
	return f, c.End, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// capture is one job's writeCapture running on its own goroutine.
type capture struct {
	done  chan struct{}
	stats captureStats
	err   error
}

// startCapture runs writeCapture until samples close (the job's run was closed) or ctx ends.
func startCapture(ctx context.Context, path string, samples <-chan pcapng.Packet, lim captureLimits, ifName func(int) string) *capture {
	c := &capture{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.stats, c.err = writeCapture(ctx, path, samples, lim, ifName)
	}()
	return c
}

// Wait returns writeCapture's result once it has finished. Safe to call more than once.
func (c *capture) Wait() (captureStats, error) {
	<-c.done
	return c.stats, c.err
}
