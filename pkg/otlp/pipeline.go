package otlp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// MaxBatchPoints bounds the data points of one export request; a larger collection is sent as
// several requests, each with its own timeout.
const MaxBatchPoints = 2048

// DefaultURLPath is where OTLP/HTTP receivers take metrics.
const DefaultURLPath = "/v1/metrics"

var errExportOff = errors.New("otlp export is off (" + "otlp_endpoint is empty)")

// pipelineConfig is what a pipeline is built from.
type pipelineConfig struct {
	endpoint string
	interval time.Duration
}

// pipeline is one MeterProvider: periodic reader, OTLP/HTTP exporter, its own HTTP transport.
type pipeline struct {
	url       string
	timeout   time.Duration // one export request (and one reader collect+export)
	provider  *sdkmetric.MeterProvider
	reader    *sdkmetric.PeriodicReader
	transport *http.Transport
}

// EndpointURL turns otlp_endpoint into the URL exports are posted to: host:port means
// http://host:port/v1/metrics (plaintext, like SONiC's own otel container on loopback); an
// http:// or https:// URL is used as given, with /v1/metrics when it has no path. https means TLS
// verified against the system's roots.
func EndpointURL(endpoint string) (*url.URL, error) {
	if endpoint == "" {
		return nil, errExportOff
	}
	raw := endpoint
	if !strings.Contains(endpoint, "://") {
		raw = "http://" + endpoint
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: scheme must be http or https", endpoint)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: no host", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultURLPath
	}
	return u, nil
}

// exportTimeout bounds one export request: the interval, within 2-10 s. A collector that hangs
// holds the reader at most this long per request; periodic collections due meanwhile are skipped,
// not queued (the next one carries the same cumulative values).
func exportTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 2*time.Second), 10*time.Second)
}

// finalTimeout bounds a job's final export: it may wait for an export in progress, then makes
// its own, which may take a few requests.
func (p *pipeline) finalTimeout() time.Duration { return 3 * p.timeout }

func (e *Exporter) newPipeline(cfg pipelineConfig) (*pipeline, error) {
	u, err := EndpointURL(cfg.endpoint)
	if err != nil {
		return nil, err
	}
	timeout := exportTimeout(cfg.interval)
	// Our own transport, so shutting a pipeline down closes its connections.
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
	}
	exp, err := otlpmetrichttp.New(context.Background(),
		otlpmetrichttp.WithEndpointURL(u.String()),
		otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
		// No retries: a failed export is superseded by the next one, which carries the same
		// cumulative values, so nothing waits or piles up while the collector is away.
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		otlpmetrichttp.WithHTTPClient(&http.Client{Transport: statusRecorder{transport}, Timeout: timeout}),
	)
	if err != nil {
		return nil, err
	}
	p := &pipeline{url: u.String(), timeout: timeout, transport: transport}
	p.reader = sdkmetric.NewPeriodicReader(&tracker{Exporter: exp, e: e, url: p.url},
		sdkmetric.WithInterval(cfg.interval),
		sdkmetric.WithTimeout(timeout),
		sdkmetric.WithMaxExportBatchSize(MaxBatchPoints),
		sdkmetric.WithProducer(producer{e}),
	)
	p.provider = sdkmetric.NewMeterProvider(sdkmetric.WithResource(e.res), sdkmetric.WithReader(p.reader))
	return p, nil
}

// flush collects and exports now, through the reader's goroutine.
func (p *pipeline) flush(ctx context.Context) error { return p.reader.ForceFlush(ctx) }

// shutdown makes a last export and stops the reader, then closes the connections.
func (p *pipeline) shutdown(ctx context.Context) error {
	err := p.provider.Shutdown(ctx)
	p.transport.CloseIdleConnections()
	return err
}

// tracker is the exporter the reader calls: it counts each request's outcome against the jobs
// whose points it carried, and reports success to the reader either way, so export failures go
// to the job results and our log rather than the SDK's global error handler.
type tracker struct {
	sdkmetric.Exporter
	e   *Exporter
	url string
}

func (t *tracker) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	var status httpStatus
	err := t.Exporter.Export(context.WithValue(ctx, httpStatusKey{}, &status), rm)
	if err != nil && status.code.Load() != 0 {
		// The SDK's error says "retry-able request failure" but not which status it was.
		err = fmt.Errorf("HTTP %d %s: %w", status.code.Load(), http.StatusText(int(status.code.Load())), err)
	}
	t.e.recordExport(t.url, jobsIn(rm), err)
	return nil
}

// httpStatus is where statusRecorder leaves the status of the last response of an export.
type httpStatus struct{ code atomic.Int32 }

type httpStatusKey struct{}

// statusRecorder notes each response's status in the request context's httpStatus.
type statusRecorder struct{ base http.RoundTripper }

func (r statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if st, ok := req.Context().Value(httpStatusKey{}).(*httpStatus); ok && resp != nil {
		st.code.Store(int32(resp.StatusCode))
	}
	return resp, err
}

// jobsIn lists the jobs whose points rm carries: each job's points are in a scope of their own,
// marked with the job id.
func jobsIn(rm *metricdata.ResourceMetrics) []string {
	var ids []string
	for _, sm := range rm.ScopeMetrics {
		if v, ok := sm.Scope.Attributes.Value(AttrJobID); ok {
			ids = append(ids, v.AsString())
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids) // a job running again under the id of one still ending
}

func osHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
