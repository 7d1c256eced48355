// Package cli owns the telegen-sonic command line: start, status, results, stop, list and
// watch, over pkg/client (SONiC's Redis directly by default, telegen-rest with --api), with exit
// codes that tell invalid input, the concurrency cap and unavailability apart.
package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitOther       = 1 // anything else (not found, job failed, ...)
	ExitInvalid     = 2 // invalid input: bad flags or a field the validator refused
	ExitCap         = 3 // every job slot is taken (HTTP 429)
	ExitUnavailable = 4 // feature disabled, no verdict from telegend, Redis or telegen-rest down
)

// App is the telegen-sonic application. Run it with RunContext and exit with ExitCode of its
// error; errors are already printed to ErrWriter.
func App() *cli.App {
	app := &cli.App{
		Name:  "telegen-sonic",
		Usage: "run and read on-demand data-plane telemetry jobs on a SONiC switch",
		Description: "By default telegen-sonic writes TELEGEN_JOB|<id> into CONFIG_DB and reads STATE_DB itself,\n" +
			"finding Redis through database_config.json (--db-config, $DB_CONFIG_PATH). With --api it goes\n" +
			"through telegen-rest instead. Either way telegend alone decides, and the command waits for its verdict.\n\n" +
			"Exit codes: 0 ok, 1 other error, 2 invalid input, 3 concurrency cap reached, 4 unavailable\n" +
			"(feature disabled, no verdict from telegend, Redis or telegen-rest down).",
		Writer:                    os.Stdout,
		ErrWriter:                 os.Stderr,
		HideHelpCommand:           true,
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {}, // printed by each action; main exits
		OnUsageError:              usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fail(c, usagef("unknown command %q (see --help)", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			startCommand(),
			statusCommand(),
			resultsCommand(),
			stopCommand(),
			listCommand(),
			watchCommand(),
		},
	}
	return app
}

// ExitCode is the process exit code for an error App returned.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ex cli.ExitCoder
	if errors.As(err, &ex) {
		return ex.ExitCode()
	}
	return codeFor(err)
}

func codeFor(err error) int {
	var u *usageErr
	if errors.As(err, &u) {
		return ExitInvalid
	}
	e, ok := client.AsError(err)
	if !ok {
		return ExitOther
	}
	switch e.Code {
	case client.CodeInvalidArgument, client.CodeTooLarge:
		return ExitInvalid
	case client.CodeConcurrencyLimit:
		return ExitCap
	case client.CodeUnavailable, client.CodeFeatureDisabled:
		return ExitUnavailable
	}
	return ExitOther
}

// exitErr is an error already printed, with its exit code.
type exitErr struct {
	err  error
	code int
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }
func (e *exitErr) ExitCode() int { return e.code }

// usageErr is a mistake in the command line itself.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageErr{fmt.Sprintf(format, args...)} }

func usageError(c *cli.Context, err error, _ bool) error {
	return fail(c, &usageErr{err.Error() + " (see --help)"})
}

// fail prints err and returns it with its exit code.
func fail(c *cli.Context, err error) error {
	fmt.Fprintln(c.App.ErrWriter, FormatError(err))
	return &exitErr{err: err, code: codeFor(err)}
}

// FormatError is how the CLI prints an error: "ERROR: <message>", followed by the HTTP status
// for API errors (in direct mode too, naming the same class of outcome), e.g.
// "ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)".
func FormatError(err error) string {
	if e, ok := client.AsError(err); ok {
		msg := e.Message
		if e.Field != "" {
			if flag := flagFor(e.Field); flag != "" {
				if rest, ok := strings.CutPrefix(msg, e.Field+": "); ok {
					msg = flag + ": " + rest
				}
			}
		}
		status := e.Status
		if status == 0 {
			status = client.StatusOf(e.Code)
		}
		return fmt.Sprintf("ERROR: %s (HTTP %d)", msg, status)
	}
	return "ERROR: " + err.Error()
}

// flagFor names the command-line flag behind a REST field.
func flagFor(field string) string {
	if f, ok := strings.CutPrefix(field, "filters."); ok {
		return "--filter " + f
	}
	switch field {
	case "port":
		return "--port"
	case "direction":
		return "--dir"
	case "span_method":
		return "--span-method"
	case "vlan":
		return "--vlan"
	case "sample_rate":
		return "--sample-rate"
	case "duration_sec":
		return "--duration"
	case "otlp_export":
		return "--otlp-export"
	case "result_detail":
		return "--result-detail"
	case "job_id":
		return "--job"
	}
	return ""
}

// connFlags are the flags every command takes to reach jobs and print them.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", EnvVars: []string{"TELEGEN_API"}, Usage: "go through telegen-rest at `URL` (http://host:port, https://host:port or unix:/path) instead of Redis"},
		&cli.StringFlag{Name: "db-config", Usage: "SONiC database_config.json `FILE` (default: $DB_CONFIG_PATH, else /var/run/redis/sonic-db/database_config.json)"},
		&cli.DurationFlag{Name: "timeout", Value: client.DefaultVerdictTimeout, Usage: "how long to wait for telegend's verdict (direct mode; telegen-rest has its own)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "`FORMAT` of what is printed: table or json"},
		&cli.StringFlag{Name: "api-ca", Usage: "CA bundle `FILE` to verify an https telegen-rest with"},
		&cli.StringFlag{Name: "api-cert", Usage: "client certificate `FILE` for mTLS to telegen-rest"},
		&cli.StringFlag{Name: "api-key", Usage: "client private key `FILE` for mTLS to telegen-rest"},
	}
}

// env is what an action works with.
type env struct {
	c      *cli.Context
	svc    client.Service
	out    io.Writer
	output string
}

// action wraps a command's body: it checks --output, opens the backend, and prints and
// classifies any error.
func action(body func(e *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		err := func() error {
			output := c.String("output")
			if output != "table" && output != "json" {
				return usagef("--output must be table or json, not %q", output)
			}
			svc, err := open(c)
			if err != nil {
				return err
			}
			defer svc.Close()
			return body(&env{c: c, svc: svc, out: c.App.Writer, output: output})
		}()
		if err != nil {
			return fail(c, err)
		}
		return nil
	}
}

func open(c *cli.Context) (client.Service, error) {
	api := c.String("api")
	if api == "" {
		return client.OpenDirect(c.String("db-config"), client.DirectOptions{VerdictTimeout: c.Duration("timeout")})
	}
	opt := client.HTTPOptions{Timeout: c.Duration("timeout") + 30*time.Second}
	if ca, cert, key := c.String("api-ca"), c.String("api-cert"), c.String("api-key"); ca != "" || cert != "" || key != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, usagef("--api-ca: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, usagef("--api-ca %s: no PEM certificate in it", ca)
			}
		}
		if cert != "" || key != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, usagef("--api-cert/--api-key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opt.TLS = cfg
	}
	svc, err := client.NewHTTP(api, opt)
	if err != nil {
		return nil, usagef("--api: %v", err)
	}
	return svc, nil
}

// jobArg is --job, or the single argument.
func jobArg(c *cli.Context) (string, error) {
	id := c.String("job")
	switch {
	case id != "" && c.NArg() == 0:
		return id, nil
	case id == "" && c.NArg() == 1:
		return c.Args().First(), nil
	case id == "" && c.NArg() == 0:
		return "", usagef("--job is required")
	case c.NArg() > 1:
		return "", usagef("unexpected arguments %q (flags go before the job argument)", c.Args().Slice()[1:])
	}
	return "", usagef("give the job once, as --job ID or as the argument")
}

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("unexpected argument %q", c.Args().First())
	}
	return nil
}

func jobFlag() cli.Flag {
	return &cli.StringFlag{Name: "job", Aliases: []string{"j"}, Usage: "job `ID`"}
}

func withConn(flags ...cli.Flag) []cli.Flag { return append(flags, connFlags()...) }

// durationSec turns --duration (seconds, or a Go duration of whole seconds such as 90s or 2m)
// into duration_sec; anything else is passed on for the validator to name.
func durationSec(s string) string {
	if s == "" {
		return ""
	}
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return s
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Second != 0 {
		return s
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}
