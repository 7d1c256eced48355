// Command trafgen writes or sends deterministic Ethernet traffic mixes (IPv4/IPv6, TCP/UDP/ICMP,
// 802.1Q, DSCP) for telegen-sonic demos and tests.
//
// Frames go to a pcap file (-o), out of an interface through an AF_PACKET socket (-send), or
// both. Destination MACs are locally administered unicast, so a receiving Linux stack drops
// them as PACKET_OTHERHOST and nothing is routed. The last line on stdout is
// "frames=N bytes=B", where B is the sum of frame lengths as sent (tshark's frame.len).
//
//	ip netns exec vs-hosts trafgen -send vh-Ethernet16 -n 1000 -mix all
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "trafgen:", err)
		os.Exit(1)
	}
}

// pcapEpoch is the timestamp of the first frame in a written pcap, so files are reproducible.
var pcapEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// run is the whole program: parse args, build the mix, write and/or send it, print the summary.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trafgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		out   = fs.String("o", "", "write the frames to this pcap `file`")
		iface = fs.String("send", "", "send the frames out of this `interface` (AF_PACKET; needs CAP_NET_RAW)")
		n     = fs.Int("n", 1000, "number of frames")
		mix   = fs.String("mix", "all", "traffic mix: "+mixNames)
		k     = fs.Int("flows", 12, "number of flows (5-tuples); flow kinds cycle through the mix")
		seed  = fs.Uint64("seed", 1, "seed: the same flags give the same frames")
		size  = fs.String("size", "mixed", sizeHelp)
		pps   = fs.Float64("pps", 0, "rate cap in frames per second (0 = as fast as possible)")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: trafgen [-o FILE.pcap] [-send IFACE] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" && *iface == "" {
		return errors.New("nothing to do: give -o FILE.pcap and/or -send IFACE")
	}
	if *pps < 0 {
		return fmt.Errorf("-pps: %v is negative", *pps)
	}
	dist, err := parseSize(*size)
	if err != nil {
		return err
	}
	all, err := frames(*mix, *n, *k, *seed, dist)
	if err != nil {
		return err
	}

	var (
		pf *os.File
		pw *pcapWriter
	)
	if *out != "" {
		if pf, err = os.Create(*out); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		defer func() {
			if pf != nil {
				pf.Close() // error path only; the success path closes and checks below
			}
		}()
		if pw, err = newPcapWriter(pf); err != nil {
			return fmt.Errorf("-o %s: %w", *out, err)
		}
	}
	var snd *packetSender
	if *iface != "" {
		if snd, err = openSender(*iface); err != nil {
			return err
		}
		defer snd.Close()
	}

	gap := 10 * time.Microsecond // pcap spacing when there is no rate
	if *pps > 0 {
		gap = time.Duration(float64(time.Second) / *pps)
	}
	start := time.Now()
	var sent, bytes int
	for i, fr := range all {
		if snd != nil {
			if *pps > 0 {
				if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-ctx.Done():
						t.Stop()
					case <-t.C:
					}
				}
			}
			if ctx.Err() != nil {
				fmt.Fprintf(stdout, "frames=%d bytes=%d\n", sent, bytes)
				return fmt.Errorf("interrupted after %d of %d frames", sent, len(all))
			}
			if err := snd.send(fr); err != nil {
				fmt.Fprintf(stdout, "frames=%d bytes=%d\n", sent, bytes)
				return err
			}
		}
		if pw != nil {
			if err := pw.writeFrame(pcapEpoch.Add(time.Duration(i)*gap), fr); err != nil {
				return fmt.Errorf("-o %s: %w", *out, err)
			}
		}
		sent++
		bytes += len(fr)
	}
	if pw != nil {
		err := errors.Join(pw.flush(), pf.Close())
		pf = nil
		if err != nil {
			return fmt.Errorf("-o %s: %w", *out, err)
		}
	}
	fmt.Fprintf(stdout, "frames=%d bytes=%d\n", sent, bytes)
	if snd != nil {
		if d, ok := snd.dropped(); ok && d > 0 {
			return fmt.Errorf("-send %s: the kernel dropped %d frames (tx_dropped); lower -pps", *iface, d)
		}
	}
	return nil
}
