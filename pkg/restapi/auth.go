package restapi

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
)

// Role is what a caller may do.
type Role string

// Roles.
const (
	RoleRead    Role = "read"    // GET only
	RoleOperate Role = "operate" // everything
)

func parseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleRead, RoleOperate:
		return r, nil
	}
	return "", fmt.Errorf("role must be read or operate, not %q", s)
}

// RoleMap maps client certificates to roles by subject common name (CN) or organizational
// unit (OU). A CN rule wins over OU rules; among matching OU rules the least privilege wins.
type RoleMap struct {
	byCN map[string]Role
	byOU map[string]Role
}

// NewRoleMap returns an empty map.
func NewRoleMap() *RoleMap {
	return &RoleMap{byCN: map[string]Role{}, byOU: map[string]Role{}}
}

// Add adds one rule "CN:<name>=<role>" or "OU:<name>=<role>" (role read or operate). The
// name is everything between the colon and the last '='.
func (m *RoleMap) Add(rule string) error {
	kind, rest, ok := strings.Cut(rule, ":")
	eq := strings.LastIndexByte(rest, '=')
	if !ok || eq <= 0 {
		return fmt.Errorf("role rule %q: want CN:<name>=<role> or OU:<name>=<role>", rule)
	}
	name, roleText := rest[:eq], rest[eq+1:]
	role, err := parseRole(roleText)
	if err != nil {
		return fmt.Errorf("role rule %q: %w", rule, err)
	}
	switch strings.ToUpper(kind) {
	case "CN":
		m.byCN[name] = role
	case "OU":
		m.byOU[name] = role
	default:
		return fmt.Errorf("role rule %q: want CN: or OU:, not %s:", rule, kind)
	}
	return nil
}

// Len is the number of rules.
func (m *RoleMap) Len() int { return len(m.byCN) + len(m.byOU) }

// LoadRoleMap reads rules from a file, one per line; blank lines and lines starting with '#'
// are skipped. Errors name the file and line.
func LoadRoleMap(path string) (*RoleMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := NewRoleMap()
	if err := m.read(f, path); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *RoleMap) read(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := m.Add(line); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	return sc.Err()
}

// RoleFor returns the role of a verified client certificate.
func (m *RoleMap) RoleFor(cert *x509.Certificate) (Role, bool) {
	if r, ok := m.byCN[cert.Subject.CommonName]; ok {
		return r, true
	}
	var best Role
	for _, ou := range cert.Subject.OrganizationalUnit {
		r, ok := m.byOU[ou]
		if !ok {
			continue
		}
		if best == "" || r == RoleRead {
			best = r
		}
	}
	return best, best != ""
}

// authorize gives each request a role and refuses what the role may not do. Requests without
// TLS (the unix socket, plain loopback HTTP) and TLS requests when roles is nil operate.
func authorize(roles *RoleMap, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := RoleOperate
		info := logInfoFrom(r.Context())
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cert := r.TLS.PeerCertificates[0]
			if info != nil {
				info.subject = cert.Subject.String()
			}
			if roles != nil {
				rl, ok := roles.RoleFor(cert)
				if !ok {
					writeError(w, &client.Error{Status: http.StatusForbidden, Code: client.CodeForbidden,
						Message: "client certificate " + cert.Subject.String() + " has no role"})
					return
				}
				role = rl
			}
		} else if r.TLS != nil && roles != nil {
			writeError(w, &client.Error{Status: http.StatusForbidden, Code: client.CodeForbidden,
				Message: "a client certificate is required"})
			return
		}
		if info != nil {
			info.role = role
		}
		if role == RoleRead && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, &client.Error{Status: http.StatusForbidden, Code: client.CodeForbidden,
				Message: "role read may only GET; " + r.Method + " needs role operate"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logInfo collects what the access log reports beyond the request line.
type logInfo struct {
	job     string
	role    Role
	subject string
}

type logInfoKey struct{}

func logInfoFrom(ctx context.Context) *logInfo {
	li, _ := ctx.Value(logInfoKey{}).(*logInfo)
	return li
}

func setJob(r *http.Request, id string) {
	if li := logInfoFrom(r.Context()); li != nil && id != "" {
		li.job = id
	}
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog logs one structured line per request.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		li := &logInfo{}
		r = r.WithContext(context.WithValue(r.Context(), logInfoKey{}, li))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Int64("bytes", sw.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		}
		if li.job != "" {
			attrs = append(attrs, slog.String("job", li.job))
		}
		if li.role != "" {
			attrs = append(attrs, slog.String("role", string(li.role)))
		}
		if li.subject != "" {
			attrs = append(attrs, slog.String("subject", li.subject))
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}
