// Package client owns the front-ends' way to telegen jobs: the REST API's wire types, a typed
// client for telegen-rest, and a direct backend that writes TELEGEN_JOB keys into CONFIG_DB and
// waits for telegend's verdict in STATE_DB, as telegen-rest itself does.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// Service is what a front-end can do with jobs. Both backends implement it: Direct (Redis, as
// telegen-rest and the CLI by default use) and HTTP (through telegen-rest). Every error a method
// returns for a reason the user can act on is an *Error.
type Service interface {
	// Start validates req, writes TELEGEN_JOB|<new id> and waits for telegend's verdict. It
	// returns the admitted job (running, starting or pending), or an *Error: invalid_argument,
	// concurrency_limit, feature_disabled, unavailable (no verdict in time; the key is removed
	// again) or job_failed.
	Start(ctx context.Context, req JobRequest) (Job, error)
	// Get returns the job's STATE_DB record (not_found when there is none).
	Get(ctx context.Context, id string) (Job, error)
	// List returns every job STATE_DB has a record of, oldest first.
	List(ctx context.Context) ([]Job, error)
	// Result returns the result document of an ended job (not_ready while it runs).
	Result(ctx context.Context, id string) (Result, error)
	// Pcap opens the packet capture of a pcaplike job.
	Pcap(ctx context.Context, id string) (io.ReadCloser, error)
	// Stop deletes TELEGEN_JOB|id and waits for the stopped verdict; a job that already ended is
	// returned as it ended. Stopping a stopped job again is not an error.
	Stop(ctx context.Context, id string) (Job, error)
	// Close releases the backend's connections.
	Close() error
}

// DefaultVerdictTimeout is how long Start and Stop wait for telegend's verdict.
const DefaultVerdictTimeout = 5 * time.Second

// Job is a job as STATE_DB records it (REST GET /v1/monitor/jobs/{id}).
type Job struct {
	ID            string         `json:"job_id"`
	Status        jobspec.Status `json:"status"`
	Reason        string         `json:"reason,omitempty"`
	Port          string         `json:"port,omitempty"`
	Interface     string         `json:"interface,omitempty"`
	Slot          *int           `json:"slot,omitempty"`
	MirrorSession string         `json:"mirror_session,omitempty"`
	CreatedAt     time.Time      `json:"created_at,omitzero"`
	StartedAt     time.Time      `json:"started_at,omitzero"`
	ExpiresAt     time.Time      `json:"expires_at,omitzero"`
	FinishedAt    time.Time      `json:"finished_at,omitzero"`
	UpdatedAt     time.Time      `json:"updated_at,omitzero"`
	PacketsTotal  uint64         `json:"packets_total"`
	BytesTotal    uint64         `json:"bytes_total"`
	// TopFlows are live top flows, when telegend publishes them with the record.
	TopFlows []Flow `json:"top_flows,omitempty"`
}

// Created is the body of 201 Created: exactly the fields DESIGN.md gives.
type Created struct {
	ID        string         `json:"job_id"`
	Status    jobspec.Status `json:"status"`
	Interface string         `json:"interface"`
}

// Stopped is the body of a successful DELETE.
type Stopped struct {
	ID     string         `json:"job_id"`
	Status jobspec.Status `json:"status"`
}

// JobList is the body of GET /v1/monitor/jobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
}

// Flow is one entry of top_flows.
type Flow struct {
	FiveTuple string `json:"5tuple"`
	Pkts      uint64 `json:"pkts"`
	Bytes     uint64 `json:"bytes"`
	VLAN      uint16 `json:"vlan,omitempty"`
}

// Error codes: the "error" member of an error body. Each has one HTTP status (StatusOf).
const (
	CodeInvalidArgument  = "invalid_argument"   // 400, names the field
	CodeForbidden        = "forbidden"          // 403, the caller's role may not do this
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeNotReady         = "not_ready"          // 409, e.g. the result of a job still running
	CodeTooLarge         = "request_too_large"  // 413
	CodeConcurrencyLimit = "concurrency_limit"  // 429, every slot is taken
	CodeInternal         = "internal"           // 500
	CodeJobFailed        = "job_failed"         // 502, telegend could not run the job
	CodeFeatureDisabled  = "feature_disabled"   // 503, FEATURE|telegen is disabled
	CodeUnavailable      = "unavailable"        // 503, Redis or telegend not answering
)

var codeStatus = map[string]int{
	CodeInvalidArgument:  http.StatusBadRequest,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeNotReady:         http.StatusConflict,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeConcurrencyLimit: http.StatusTooManyRequests,
	CodeInternal:         http.StatusInternalServerError,
	CodeJobFailed:        http.StatusBadGateway,
	CodeFeatureDisabled:  http.StatusServiceUnavailable,
	CodeUnavailable:      http.StatusServiceUnavailable,
}

// StatusOf is the HTTP status of an error code (500 for an unknown one).
func StatusOf(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is an outcome the caller can act on; it is also the REST error body. The 429 body is
// exactly {"error":"concurrency_limit","message":"At most N concurrent jobs are allowed. Try again later."}.
type Error struct {
	Status  int    `json:"-"` // HTTP status
	Code    string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`  // the REST field at fault (invalid_argument)
	JobID   string `json:"job_id,omitempty"` // the job concerned, when one was written
}

func (e *Error) Error() string { return e.Message }

// newError makes an *Error with the status of its code.
func newError(code, format string, args ...any) *Error {
	return &Error{Status: StatusOf(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// CapMessage is the message of a concurrency_limit error.
func CapMessage(maxJobs int) string {
	return fmt.Sprintf("At most %d concurrent jobs are allowed. Try again later.", maxJobs)
}
