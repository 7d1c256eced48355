// Package restapi owns telegen-rest's HTTP surface: the /v1 routes, request limits, the mTLS
// role check and the access log, over a client.Service that does the CONFIG_DB writes and
// STATE_DB reads. It never admits anything itself: telegend alone decides.
package restapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = 64 << 10

// Options configures the handler; zero values take the defaults.
type Options struct {
	// Logger receives the access log (default: discard).
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body (default 64 KiB).
	MaxBodyBytes int64
	// Roles maps verified client certificates to roles. Nil lets every caller operate
	// (plain HTTP on loopback or the unix socket, or TLS without a role map).
	Roles *RoleMap
}

// NewHandler serves the REST API of DESIGN.md under /v1 from svc.
func NewHandler(svc client.Service, opt Options) http.Handler {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &handler{svc: svc, opt: opt}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+client.JobsPath, h.create)
	mux.HandleFunc("GET "+client.JobsPath, h.list)
	mux.HandleFunc("GET "+client.JobsPath+"/{id}", h.get)
	mux.HandleFunc("DELETE "+client.JobsPath+"/{id}", h.delete)
	mux.HandleFunc("GET "+client.JobsPath+"/{id}/results", h.results)
	// Patterns without a method catch the other methods, so that every answer is JSON.
	mux.HandleFunc(client.JobsPath, methodNotAllowed("GET, POST"))
	mux.HandleFunc(client.JobsPath+"/{id}", methodNotAllowed("GET, DELETE"))
	mux.HandleFunc(client.JobsPath+"/{id}/results", methodNotAllowed("GET"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &client.Error{Status: http.StatusNotFound, Code: client.CodeNotFound, Message: "no such endpoint: " + r.URL.Path})
	})
	return accessLog(opt.Logger, authorize(opt.Roles, mux))
}

type handler struct {
	svc client.Service
	opt Options
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opt.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &client.Error{Status: http.StatusRequestEntityTooLarge, Code: client.CodeTooLarge,
				Message: "request body exceeds " + strconv.FormatInt(mbe.Limit, 10) + " bytes"})
			return
		}
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: client.CodeInvalidArgument, Message: "reading the request body: " + err.Error()})
		return
	}
	req, err := client.ParseJobRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	job, err := h.svc.Start(r.Context(), req)
	if err != nil {
		setJob(r, "")
		writeError(w, err)
		return
	}
	setJob(r, job.ID)
	w.Header().Set("Location", client.JobsPath+"/"+job.ID)
	writeJSON(w, http.StatusCreated, client.Created{ID: job.ID, Status: job.Status, Interface: job.Interface})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	jobs, err := h.svc.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if jobs == nil {
		jobs = []client.Job{}
	}
	writeJSON(w, http.StatusOK, client.JobList{Jobs: jobs})
}

// jobID returns the validated {id}, or writes the 400 and returns "".
func jobID(w http.ResponseWriter, r *http.Request) string {
	id := r.PathValue("id")
	if err := jobspec.ValidJobID(id); err != nil {
		var fe *jobspec.FieldError
		errors.As(err, &fe)
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: client.CodeInvalidArgument,
			Message: "job_id: " + fe.Why, Field: "job_id"})
		return ""
	}
	setJob(r, id)
	return id
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id := jobID(w, r)
	if id == "" {
		return
	}
	job, err := h.svc.Get(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	id := jobID(w, r)
	if id == "" {
		return
	}
	job, err := h.svc.Stop(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, client.Stopped{ID: job.ID, Status: job.Status})
}

func (h *handler) results(w http.ResponseWriter, r *http.Request) {
	id := jobID(w, r)
	if id == "" {
		return
	}
	switch format := r.URL.Query().Get("format"); format {
	case "", "json":
		res, err := h.svc.Result(r.Context(), id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	case "pcap":
		rc, err := h.svc.Pcap(r.Context(), id)
		if err != nil {
			writeError(w, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/x-pcapng")
		w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.pcapng"`)
		w.WriteHeader(http.StatusOK)
		_, _ = io.Copy(w, rc)
	default:
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: client.CodeInvalidArgument,
			Message: "format: must be json or pcap, not " + strconv.Quote(format), Field: "format"})
	}
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, &client.Error{Status: http.StatusMethodNotAllowed, Code: client.CodeMethodNotAllowed,
			Message: r.Method + " is not allowed here; allowed: " + allow})
	}
}

// writeJSON writes v as the whole body (no trailing newline, so bodies compare exactly).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal","message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes an *Error with its status, anything else as 500.
func writeError(w http.ResponseWriter, err error) {
	e, ok := client.AsError(err)
	if !ok {
		e = &client.Error{Status: http.StatusInternalServerError, Code: client.CodeInternal, Message: err.Error()}
	}
	status := e.Status
	if status == 0 {
		status = client.StatusOf(e.Code)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, e)
}
