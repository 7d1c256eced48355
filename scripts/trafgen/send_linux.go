//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// packetSender writes whole Ethernet frames to one interface through an AF_PACKET socket.
// The socket is bound with protocol 0, so it never receives: it only transmits.
type packetSender struct {
	fd        int
	iface     string
	dropsBase uint64
	dropsOK   bool
}

func openSender(iface string) (*packetSender, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("-send: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("-send %s: AF_PACKET socket (needs CAP_NET_RAW): %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("-send %s: bind: %w", iface, err)
	}
	s := &packetSender{fd: fd, iface: iface}
	s.dropsBase, s.dropsOK = s.txDropped()
	return s, nil
}

func (s *packetSender) send(frame []byte) error {
	for {
		n, err := unix.Write(s.fd, frame)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("-send %s: write of a %d-byte frame: %w", s.iface, len(frame), err)
		case n != len(frame):
			return fmt.Errorf("-send %s: short write: %d of %d bytes", s.iface, n, len(frame))
		}
		return nil
	}
}

// dropped reports how many frames the kernel dropped on the interface's transmit side since
// the sender opened (a veth drops when its peer's backlog overflows), when that is readable.
func (s *packetSender) dropped() (uint64, bool) {
	now, ok := s.txDropped()
	if !ok || !s.dropsOK {
		return 0, false
	}
	return now - s.dropsBase, true
}

// txDropped reads the interface's tx drop counter from /proc/net/dev, which (unlike
// /sys/class/net) always shows this process's network namespace.
func (s *packetSender) txDropped() (uint64, bool) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != s.iface {
			continue
		}
		f := strings.Fields(rest) // 8 receive columns, then bytes packets errs drop ... transmit
		if len(f) < 12 {
			return 0, false
		}
		v, err := strconv.ParseUint(f[11], 10, 64)
		return v, err == nil
	}
	return 0, false
}

func (s *packetSender) Close() error { return unix.Close(s.fd) }
