// Command telegen-sonic is telegen's command line: it starts, follows and stops telemetry jobs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/telegen-sonic/telegen-sonic/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.App().RunContext(ctx, os.Args)
	stop()
	os.Exit(cli.ExitCode(err))
}
