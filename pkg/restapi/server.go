package restapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
)

// DefaultListen is the TCP address telegen-rest listens on when given none: loopback, and a
// port no SONiC service uses (not gNMI's 8080, nor 443, 8081, 8090, 4317/4318, 50051/50052,
// 6379/6380/6400).
const DefaultListen = "127.0.0.1:8420"

// SocketMode is the permission of a unix socket telegen-rest creates.
const SocketMode = 0o660

// Config is how telegen-rest serves.
type Config struct {
	// Listen holds "host:port" and "unix:/path" addresses (default DefaultListen).
	Listen []string
	// TLSCert and TLSKey turn on TLS for TCP addresses; ClientCA additionally requires and
	// verifies client certificates (mTLS). The unix socket stays plain: its file mode guards it.
	TLSCert, TLSKey, ClientCA string
	// Roles maps client certificates to roles; it needs ClientCA. Nil: every verified client
	// operates.
	Roles *RoleMap
	// MaxBodyBytes bounds request bodies (default 64 KiB).
	MaxBodyBytes int64
	// Timeouts (defaults 5 s header, 15 s read, 30 s write (above the verdict wait), 60 s idle,
	// 10 s shutdown).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 15*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	return c
}

// tlsConfig builds the server TLS configuration, or nil without a certificate.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		if c.ClientCA != "" {
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		if c.Roles != nil && c.Roles.Len() > 0 {
			return nil, errors.New("a role map needs mTLS (--tls-cert, --tls-key, --client-ca)")
		}
		return nil, nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s / key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA == "" {
		if c.Roles != nil && c.Roles.Len() > 0 {
			return nil, errors.New("a role map needs --client-ca")
		}
		return cfg, nil
	}
	pem, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate in it", c.ClientCA)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// Run serves svc on every address of cfg until ctx ends, then shuts down gracefully. It logs
// "listening" with each bound address. It returns an error at once when an address cannot be
// bound or the TLS material cannot be loaded.
func Run(ctx context.Context, cfg Config, svc client.Service, logger *slog.Logger) error {
	cfg = cfg.withDefaults()
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return err
	}
	roles := cfg.Roles
	if roles != nil && roles.Len() == 0 {
		roles = nil
	}
	srv := &http.Server{
		Handler:           NewHandler(svc, Options{Logger: logger, MaxBodyBytes: cfg.MaxBodyBytes, Roles: roles}),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	for _, addr := range cfg.Listen {
		l, err := listen(addr, tlsCfg)
		if err != nil {
			closeAll()
			return err
		}
		listeners = append(listeners, l)
		logger.Info("listening", "addr", l.Addr().String(), "network", l.Addr().Network(), "tls", tlsCfg != nil && l.Addr().Network() == "tcp")
	}

	errc := make(chan error, len(listeners))
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", l.Addr(), err)
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	wg.Wait()
	logger.Info("stopped")
	return runErr
}

// listen binds one address: "unix:/path" (mode 0660, a stale socket file replaced) or a TCP
// "host:port" (with TLS when configured).
func listen(addr string, tlsCfg *tls.Config) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return nil, fmt.Errorf("listen %q: unix: needs a socket path", addr)
		}
		if err := removeStaleSocket(path); err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		if err := os.Chmod(path, SocketMode); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return l, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("listen %q: want host:port or unix:/path: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l, nil
}

// removeStaleSocket removes a socket file nobody listens on; it refuses to remove anything
// else, or a socket in use.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("%s is in use by another server", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Remove(path)
}
