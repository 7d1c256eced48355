package vswitchtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// netdevFile is /proc/net/dev's format with one port's statistics.
func netdevFile(port string, rxBytes, rxPkts, rxErrs, rxDrop, rxMcast, txBytes, txPkts, txErrs, txDrop uint64) string {
	return "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n" +
		fmt.Sprintf("%6s: %d %d %d %d 0 0 0 %d %d %d %d %d 0 0 0 0\n", port, rxBytes, rxPkts, rxErrs, rxDrop, rxMcast, txBytes, txPkts, txErrs, txDrop)
}

// TestCountersPublisher proves the mapping from netdev statistics to SONiC's SAI port counters
// (rx_errs -> SAI_PORT_STAT_IF_IN_ERRORS above all: veths never count receive errors, so the
// statistics come from a file in /proc/net/dev's format) and that the background publisher
// refreshes COUNTERS_DB when they move.
func TestCountersPublisher(t *testing.T) {
	r := newRig(t)
	netdev := filepath.Join(t.TempDir(), "netdev")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(netdev+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(netdev+".tmp", netdev); err != nil {
			t.Fatal(err)
		}
	}
	write(netdevFile("Ethernet16", 5000000000123, 1000, 7, 2, 30, 900, 11, 1, 4))
	r.env = append(r.env, "VSWITCH_NETDEV="+netdev)

	var pubPID int
	t.Cleanup(func() {
		if out, err := r.vswitch("down"); err != nil {
			t.Errorf("cleanup: vswitch down: %v\n%s", err, out)
		}
		if pubPID != 0 && alive(pubPID) {
			t.Errorf("counters publisher %d left running", pubPID)
			syscall.Kill(pubPID, syscall.SIGKILL)
		}
	})
	r.mustVswitch("up", "--ports", "Ethernet16,Ethernet20")
	pubPID = r.publisherPID()

	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(r.dir, "redis.sock"), DB: 2})
	defer c.Close()
	m, err := c.HGetAll(ctx, "COUNTERS_PORT_NAME_MAP").Result()
	if err != nil || m["Ethernet16"] != "oid:0x1000000000005" || m["Ethernet20"] != "oid:0x1000000000006" {
		t.Fatalf("COUNTERS_PORT_NAME_MAP = %v, %v", m, err)
	}
	want := map[string]string{
		"SAI_PORT_STAT_IF_IN_UCAST_PKTS":       "970", // rx packets less multicast
		"SAI_PORT_STAT_IF_IN_NON_UCAST_PKTS":   "30",
		"SAI_PORT_STAT_IF_IN_OCTETS":           "5000000000123", // past 32 bits
		"SAI_PORT_STAT_IF_IN_ERRORS":           "7",
		"SAI_PORT_STAT_IF_IN_DISCARDS":         "2",
		"SAI_PORT_STAT_IF_OUT_UCAST_PKTS":      "11",
		"SAI_PORT_STAT_IF_OUT_NON_UCAST_PKTS":  "0",
		"SAI_PORT_STAT_IF_OUT_OCTETS":          "900",
		"SAI_PORT_STAT_IF_OUT_ERRORS":          "1",
		"SAI_PORT_STAT_IF_OUT_DISCARDS":        "4",
		"SAI_PORT_STAT_ETHER_RX_OVERSIZE_PKTS": "0",
		"SAI_PORT_STAT_ETHER_TX_OVERSIZE_PKTS": "0",
	}
	got, err := c.HGetAll(ctx, "COUNTERS:oid:0x1000000000005").Result()
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("COUNTERS:oid:0x1000000000005 =\n%v, %v\nwant\n%v", got, err, want)
	}
	// A port missing from the statistics reads zero.
	if v, _ := c.HGet(ctx, "COUNTERS:oid:0x1000000000006", "SAI_PORT_STAT_IF_IN_ERRORS").Result(); v != "0" {
		t.Errorf("Ethernet20 IF_IN_ERRORS = %q, want 0", v)
	}

	// Errors arrive: the publisher shows them within its period.
	write(netdevFile("Ethernet16", 5000000000123, 1000, 12, 2, 30, 900, 11, 1, 4))
	begin := time.Now()
	for {
		v, _ := c.HGet(ctx, "COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS").Result()
		if v == "12" {
			t.Logf("IF_IN_ERRORS refreshed %v after the netdev statistic moved", time.Since(begin).Round(time.Millisecond))
			break
		}
		if time.Since(begin) > 3*time.Second {
			t.Fatalf("IF_IN_ERRORS = %q 3 s after rx_errs became 12", v)
		}
		time.Sleep(20 * time.Millisecond)
	}

	r.mustVswitch("down")
	deadline := time.Now().Add(2 * time.Second)
	for alive(pubPID) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pubPID) {
		t.Errorf("counters publisher %d still running after down", pubPID)
	}
}
