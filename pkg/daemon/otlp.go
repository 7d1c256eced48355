package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/otlp"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

var _ reconciler.Exporter = (*otlp.Exporter)(nil)

// newExporter builds the OTLP exporter (off until TELEGEN|global names an endpoint), naming the
// switch in its resource from CONFIG_DB DEVICE_METADATA|localhost.
func newExporter(ctx context.Context, configDB *sonicdb.DB, logger *slog.Logger) *otlp.Exporter {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	meta, _, err := configDB.GetEntry(ctx, "DEVICE_METADATA", "localhost")
	if err != nil {
		logger.Warn("reading DEVICE_METADATA|localhost failed; metrics name the switch by the kernel's host name", "err", err)
	}
	return otlp.New(otlp.Options{
		Switch: otlp.Switch{HostName: meta["hostname"], Platform: meta["platform"], HWSKU: meta["hwsku"]},
		Logger: logger,
	})
}

// closeExporter waits a bounded time for jobs' final exports and a last export of everything.
func closeExporter(exp *otlp.Exporter, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := exp.Close(ctx); err != nil {
		logger.Warn("closing the otlp exporter", "err", err)
	}
}
