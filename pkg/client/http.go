package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// APIBase is the path prefix of the REST API.
const APIBase = "/v1"

// JobsPath is the jobs collection under APIBase.
const JobsPath = APIBase + "/monitor/jobs"

// defaultHTTPTimeout bounds one request; it must exceed the server's verdict wait.
const defaultHTTPTimeout = 30 * time.Second

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// HTTPOptions tunes HTTP; zero values take the defaults.
type HTTPOptions struct {
	// TLS is used for https URLs: the CA to trust and, for mTLS, the client certificate.
	TLS *tls.Config
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// HTTP is the Service behind telegen-rest.
type HTTP struct {
	base string // scheme://host, no trailing slash
	hc   *http.Client
}

var _ Service = (*HTTP)(nil)

// NewHTTP makes a client for the API at api: "http://host:port", "https://host:port" or
// "unix:/path/to/socket".
func NewHTTP(api string, opt HTTPOptions) (*HTTP, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = defaultHTTPTimeout
	}
	tr := &http.Transport{
		TLSClientConfig:     opt.TLS,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	c := &HTTP{hc: &http.Client{Transport: tr, Timeout: opt.Timeout}}
	if path, ok := strings.CutPrefix(api, "unix:"); ok {
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, fmt.Errorf("api %q: unix: needs a socket path", api)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://telegen-rest"
		return c, nil
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api %q: want http://host:port, https://host:port or unix:/path", api)
	}
	c.base = u.Scheme + "://" + u.Host
	return c, nil
}

// Close drops idle connections.
func (c *HTTP) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Start posts req; the Job has the fields of 201 (job_id, status, interface) and the port.
func (c *HTTP) Start(ctx context.Context, req JobRequest) (Job, error) {
	var created Created
	if err := c.do(ctx, http.MethodPost, JobsPath, req, &created); err != nil {
		return Job{}, err
	}
	return Job{ID: created.ID, Status: created.Status, Interface: created.Interface, Port: req.Port}, nil
}

// Get fetches a job.
func (c *HTTP) Get(ctx context.Context, id string) (Job, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return Job{}, invalidArgument(err)
	}
	var j Job
	err := c.do(ctx, http.MethodGet, JobsPath+"/"+url.PathEscape(id), nil, &j)
	return j, err
}

// List fetches every job.
func (c *HTTP) List(ctx context.Context) ([]Job, error) {
	var l JobList
	err := c.do(ctx, http.MethodGet, JobsPath, nil, &l)
	return l.Jobs, err
}

// Result fetches the result document.
func (c *HTTP) Result(ctx context.Context, id string) (Result, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return nil, invalidArgument(err)
	}
	var r Result
	err := c.do(ctx, http.MethodGet, JobsPath+"/"+url.PathEscape(id)+"/results?format=json", nil, &r)
	return r, err
}

// Pcap opens the capture of a pcaplike job; the caller closes it.
func (c *HTTP) Pcap(ctx context.Context, id string) (io.ReadCloser, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return nil, invalidArgument(err)
	}
	resp, err := c.send(ctx, http.MethodGet, JobsPath+"/"+url.PathEscape(id)+"/results?format=pcap", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, errorFromResponse(resp)
	}
	return resp.Body, nil
}

// Stop deletes a job; the Job has job_id and status.
func (c *HTTP) Stop(ctx context.Context, id string) (Job, error) {
	if err := jobspec.ValidJobID(id); err != nil {
		return Job{}, invalidArgument(err)
	}
	var s Stopped
	if err := c.do(ctx, http.MethodDelete, JobsPath+"/"+url.PathEscape(id), nil, &s); err != nil {
		return Job{}, err
	}
	return Job{ID: s.ID, Status: s.Status}, nil
}

func (c *HTTP) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errorFromResponse(resp)
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (c *HTTP) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, newError(CodeUnavailable, "telegen-rest unavailable: %v", err)
		}
		return nil, fmt.Errorf("telegen-rest: %w", err)
	}
	return resp, nil
}

// errorFromResponse decodes an error body; a body that is not one still gives an *Error with
// the response's status.
func errorFromResponse(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e Error
	if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
		e = Error{Code: codeForStatus(resp.StatusCode), Message: strings.TrimSpace(resp.Status + ": " + string(data))}
	}
	e.Status = resp.StatusCode
	return &e
}

func codeForStatus(status int) string {
	for code, s := range codeStatus {
		if s == status && code != CodeFeatureDisabled {
			return code
		}
	}
	return CodeInternal
}
