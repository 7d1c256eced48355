//go:build linux

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces (bind mounts).
const netnsDir = "/run/netns"

var netnsSeq atomic.Uint32

// NetNS is a named network namespace, made as `ip netns add` makes one, so that external tools
// can enter it with `ip netns exec <Name>` (or `ip -n <Name>`, `tc -n <Name>`). IPv6 is disabled
// in it by default (net.ipv6.conf.{all,default}.disable_ipv6=1) so that interfaces created or
// moved there send no ND/MLD frames, and lo is up. It is deleted in t.Cleanup.
type NetNS struct {
	name string
}

// NewNetNS creates a namespace named "tg-<pid>-<n>", unique per process and test.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	n := &NetNS{name: fmt.Sprintf("tg-%d-%d", os.Getpid(), netnsSeq.Add(1))}
	mustRun(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", n.name, err, strings.TrimSpace(string(out)))
		}
	})
	err := n.Do(func() error {
		for _, conf := range []string{"all", "default"} {
			if err := disableIPv6(conf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("netns %s: %v", n.name, err)
	}
	mustRun(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	return n
}

// NamedNetNS is a handle to an existing namespace that someone else made (and deletes).
func NamedNetNS(name string) *NetNS { return &NetNS{name: name} }

// Name is the namespace's name for `ip netns exec`, `ip -n`, `tc -n`.
func (n *NetNS) Name() string { return n.name }

// Path is the namespace's bind mount (/run/netns/<Name>), for setns(2) or nsenter --net=.
func (n *NetNS) Path() string { return filepath.Join(netnsDir, n.name) }

// Do runs fn on an OS thread that has entered the namespace and returns fn's error. What fn
// does on its own goroutine happens in the namespace: netlink, bpf(2) calls that name an
// ifindex, /proc/sys/net, and the children of exec.Command. Goroutines that fn starts do not
// inherit it. fn may call t.Fatal: the thread still leaves the namespace. If the thread cannot
// return to its original namespace it stays locked, so Go discards it when fn's goroutine ends.
func (n *NetNS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: open own namespace: %w", n.name, err)
	}
	defer orig.Close()
	target, err := os.Open(n.Path())
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", n.name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", n.name, err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// Command returns `ip netns exec <Name> name args...`, a command that runs in the namespace
// (with /sys remounted for it, as ip does).
func (n *NetNS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Run runs name args... in the namespace, fails the test if it fails, and returns its
// combined output.
func (n *NetNS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return mustRun(t, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Veth is a veth pair: Name lives in NS, PeerName in PeerNS.
type Veth struct {
	Name     string
	NS       *NetNS
	PeerName string
	PeerNS   *NetNS
}

// NewVeth creates a veth pair with one end, name, in ns and the other, peerName, in peerNS
// (which may be ns itself), disables IPv6 on both ends, then brings both up. Names may be
// anything the kernel accepts, e.g. SONiC port names like "Ethernet16". The pair is deleted in
// t.Cleanup (before the namespaces it lives in, when they were created first).
func NewVeth(t testing.TB, ns *NetNS, name string, peerNS *NetNS, peerName string) *Veth {
	t.Helper()
	mustRun(t, "ip", "link", "add", "name", name, "netns", ns.name, "type", "veth",
		"peer", "name", peerName, "netns", peerNS.name)
	t.Cleanup(func() {
		// Deleting one end deletes both. Gone already (namespace deleted) is fine.
		out, err := exec.Command("ip", "-n", ns.name, "link", "del", name).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Cannot find device") &&
			!strings.Contains(string(out), "No such file") {
			t.Errorf("delete veth %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	})
	for _, end := range []struct {
		ns   *NetNS
		name string
	}{{ns, name}, {peerNS, peerName}} {
		if err := end.ns.Do(func() error { return disableIPv6(end.name) }); err != nil {
			t.Fatalf("veth %s: %v", end.name, err)
		}
		mustRun(t, "ip", "-n", end.ns.name, "link", "set", "dev", end.name, "up")
	}
	return &Veth{Name: name, NS: ns, PeerName: peerName, PeerNS: peerNS}
}

// MountBPFFS mounts a private bpf filesystem on a temporary directory for the test's pins and
// returns its path; it is unmounted (with whatever is still pinned) in t.Cleanup.
func MountBPFFS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		Skip(t, "mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}

// disableIPv6 sets net.ipv6.conf.<conf>.disable_ipv6=1 in the calling thread's namespace; a
// kernel without IPv6 has nothing to disable.
func disableIPv6(conf string) error {
	if _, err := os.Stat("/proc/sys/net/ipv6"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	p := filepath.Join("/proc/sys/net/ipv6/conf", conf, "disable_ipv6")
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", conf, err)
	}
	return nil
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out)
}
