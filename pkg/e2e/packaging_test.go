package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// This file checks the SONiC packaging in docker-telegen-sonic/: its files agree with each other
// and with what SONiC's tools expect (TestPackaging*), supervisord runs the container's real
// supervisord.conf on the virtual switch (TestSupervisord), and telegend does its work with the
// capabilities the container grants and no others (TestLeastPrivilege, TestCapabilityNeeds).

// packagingDir is docker-telegen-sonic/ of this repository.
func packagingDir(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	must(t, err)
	return filepath.Join(root, "docker-telegen-sonic")
}

// iniFile is a supervisord-style configuration: sections of key=value lines, in file order.
type iniFile struct {
	sections []*iniSection
}

type iniSection struct {
	name string
	keys []string
	vals map[string]string
}

func parseINI(t testing.TB, path string) *iniFile {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	f := &iniFile{}
	var cur *iniSection
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			name := line[1 : len(line)-1]
			if f.section(name) != nil {
				t.Fatalf("%s:%d: section [%s] given twice", path, i+1, name)
			}
			cur = &iniSection{name: name, vals: map[string]string{}}
			f.sections = append(f.sections, cur)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if _, dup := cur.vals[k]; dup {
				t.Fatalf("%s:%d: [%s] %s given twice", path, i+1, cur.name, k)
			}
			cur.keys = append(cur.keys, k)
			cur.vals[k] = v
		}
	}
	return f
}

func (f *iniFile) section(name string) *iniSection {
	for _, s := range f.sections {
		if s.name == name {
			return s
		}
	}
	return nil
}

// programs lists the [program:x] names in file order.
func (f *iniFile) programs() []string {
	var out []string
	for _, s := range f.sections {
		if name, ok := strings.CutPrefix(s.name, "program:"); ok {
			out = append(out, name)
		}
	}
	return out
}

func (s *iniSection) set(k, v string) {
	if _, ok := s.vals[k]; !ok {
		s.keys = append(s.keys, k)
	}
	s.vals[k] = v
}

func (f *iniFile) String() string {
	var b strings.Builder
	for _, s := range f.sections {
		fmt.Fprintf(&b, "[%s]\n", s.name)
		for _, k := range s.keys {
			fmt.Fprintf(&b, "%s=%s\n", k, s.vals[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// criticalProcesses reads docker-telegen-sonic/critical_processes.
func criticalProcesses(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(packagingDir(t), "critical_processes"))
	must(t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// TestPackagingSupervisord checks supervisord.conf against SONiC's container pattern and
// critical_processes.
func TestPackagingSupervisord(t *testing.T) {
	dir := packagingDir(t)
	conf := parseINI(t, filepath.Join(dir, "supervisord.conf"))
	progs := conf.programs()

	crit := criticalProcesses(t)
	if len(crit) == 0 {
		t.Fatal("critical_processes is empty")
	}
	for _, c := range crit {
		name, ok := strings.CutPrefix(c, "program:")
		if !ok {
			t.Errorf("critical_processes: %q is not program:<name> (this container has no groups)", c)
			continue
		}
		if !slices.Contains(progs, name) {
			t.Errorf("critical_processes names %q, supervisord.conf has no [program:%s] (programs: %v)", name, name, progs)
		}
	}
	for _, want := range []string{"program:telegend", "program:telegen-rest"} {
		if !slices.Contains(crit, want) {
			t.Errorf("critical_processes lacks %s", want)
		}
	}

	if s := conf.section("supervisord"); s == nil || s.vals["nodaemon"] != "true" {
		t.Error("[supervisord] must have nodaemon=true (it is the container's entrypoint)")
	}
	if s := conf.section("eventlistener:dependent-startup"); s == nil || !strings.Contains(s.vals["command"], "supervisord_dependent_startup") {
		t.Error("no [eventlistener:dependent-startup] running supervisord_dependent_startup")
	}
	exit := conf.section("eventlistener:supervisor-proc-exit-listener")
	if exit == nil || !strings.Contains(exit.vals["command"], "--container-name telegen") {
		t.Fatal("no [eventlistener:supervisor-proc-exit-listener] with --container-name telegen")
	}
	for _, ev := range []string{"PROCESS_STATE_EXITED", "PROCESS_STATE_RUNNING", "PROCESS_STATE_FATAL"} {
		if !strings.Contains(exit.vals["events"], ev) {
			t.Errorf("the exit listener does not subscribe to %s", ev)
		}
	}
	if r := conf.section("program:rsyslogd"); r == nil || r.vals["priority"] != "1" {
		t.Error("[program:rsyslogd] must come first (priority=1)")
	}
	if st := conf.section("program:start"); st == nil || st.vals["startsecs"] != "0" || st.vals["autorestart"] != "false" {
		t.Error("[program:start] must be a one-shot (startsecs=0, autorestart=false)")
	}

	validStates := []string{"running", "exited", "stopped", "starting", "backoff", "fatal"}
	for _, p := range progs {
		s := conf.section("program:" + p)
		if s.vals["autostart"] != "false" || s.vals["dependent_startup"] != "true" {
			t.Errorf("[program:%s]: want autostart=false and dependent_startup=true (SONiC's dependent startup)", p)
		}
		if slices.Contains(crit, "program:"+p) && s.vals["autorestart"] != "false" {
			t.Errorf("[program:%s] is critical: autorestart must be false (the exit listener restarts the container)", p)
		}
		for _, dep := range strings.Fields(s.vals["dependent_startup_wait_for"]) {
			name, state, _ := strings.Cut(dep, ":")
			if !slices.Contains(progs, name) || !slices.Contains(validStates, state) {
				t.Errorf("[program:%s] waits for %q: no such program or state", p, dep)
			}
		}
		if p != "rsyslogd" && s.vals["dependent_startup_wait_for"] == "" {
			t.Errorf("[program:%s] waits for nothing; it must follow rsyslogd and start", p)
		}
	}
}

// manifestSchema is the key tree sonic-package-manager's manifest schema accepts
// (sonic-utilities sonic_package_manager/manifest.py at 691b1bbc4f): nil leaves, nested maps.
// Keys it does not know are dropped silently, so a misspelt key would be a silent no-op.
var manifestSchema = map[string]any{
	"version": nil,
	"package": map[string]any{"version": nil, "name": nil, "description": nil, "base-os": nil,
		"depends": nil, "breaks": nil, "init-cfg": nil, "changelog": nil, "debug-dump": nil},
	"service": map[string]any{"name": nil, "requires": nil, "requisite": nil, "wanted-by": nil,
		"after": nil, "before": nil, "dependent": nil, "dependent-of": nil, "post-start-action": nil,
		"pre-shutdown-action": nil, "asic-service": nil, "host-service": nil, "delayed": nil,
		"check_up_status": nil, "type": nil, "stop-time": nil,
		"warm-shutdown": map[string]any{"after": nil, "before": nil},
		"fast-shutdown": map[string]any{"after": nil, "before": nil},
		"syslog":        map[string]any{"support-rate-limit": nil}},
	"container": map[string]any{"privileged": nil, "volumes": nil, "mounts": nil, "environment": nil, "tmpfs": nil},
	"processes": nil,
	"cli": map[string]any{"mandatory": nil, "show": nil, "config": nil, "clear": nil,
		"auto-generate-show": nil, "auto-generate-config": nil,
		"auto-generate-show-source-yang-modules": nil, "auto-generate-config-source-yang-modules": nil},
}

func checkSchema(t *testing.T, path string, v map[string]any, schema map[string]any) {
	t.Helper()
	for k, sub := range v {
		s, known := schema[k]
		if !known {
			t.Errorf("manifest.json: %s%s is not a sonic-package-manager manifest field", path, k)
			continue
		}
		if sm, ok := s.(map[string]any); ok {
			vm, ok := sub.(map[string]any)
			if !ok {
				t.Errorf("manifest.json: %s%s must be an object", path, k)
				continue
			}
			checkSchema(t, path+k+".", vm, sm)
		}
	}
}

// TestPackagingManifest checks manifest.json for sonic-package-manager and init_cfg.json's
// FEATURE entry.
func TestPackagingManifest(t *testing.T) {
	dir := packagingDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	must(t, err)
	var raw map[string]any
	must(t, json.Unmarshal(data, &raw))
	checkSchema(t, "", raw, manifestSchema)

	var m struct {
		Version string `json:"version"`
		Package struct {
			Version string `json:"version"`
			Name    string `json:"name"`
		} `json:"package"`
		Service struct {
			Name        string   `json:"name"`
			Requires    []string `json:"requires"`
			AsicService bool     `json:"asic-service"`
			HostService bool     `json:"host-service"`
			Delayed     bool     `json:"delayed"`
		} `json:"service"`
		Container struct {
			Privileged bool     `json:"privileged"`
			Volumes    []string `json:"volumes"`
		} `json:"container"`
		Processes []struct {
			Name string `json:"name"`
		} `json:"processes"`
		CLI struct {
			Config []string `json:"config"`
			Show   []string `json:"show"`
		} `json:"cli"`
	}
	must(t, json.Unmarshal(data, &m))
	semver := regexp.MustCompile(`^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$`)
	if !semver.MatchString(m.Version) || !semver.MatchString(m.Package.Version) {
		t.Errorf("manifest versions %q, %q: want semantic versions", m.Version, m.Package.Version)
	}
	if m.Package.Name != "telegen" || m.Service.Name != "telegen" {
		t.Errorf("package/service name %q/%q, want telegen (the FEATURE and container name)", m.Package.Name, m.Service.Name)
	}
	if !m.Service.HostService || m.Service.AsicService || m.Service.Delayed {
		t.Error("want host-service true, asic-service false, delayed false (has_global_scope True, has_per_asic_scope False)")
	}
	if !slices.Contains(m.Service.Requires, "database") {
		t.Error("the service must require database")
	}
	if m.Container.Privileged {
		t.Error("the container must not be privileged")
	}
	mounts := map[string]string{}
	for _, v := range m.Container.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("volume %q is not src:dst[:mode]", v)
			continue
		}
		mounts[parts[1]] = v
	}
	if mounts["/sys/fs/bpf"] != "/sys/fs/bpf:/sys/fs/bpf:rw" {
		t.Errorf("the host's bpffs must be mounted rw at /sys/fs/bpf; volumes %v", m.Container.Volumes)
	}
	if _, ok := mounts["/var/run/redis"]; ok {
		t.Error("docker_image_ctl.j2 already mounts /var/run/redis$DEV; a second -v for it fails docker create")
	}
	var procs []string
	for _, p := range m.Processes {
		procs = append(procs, "program:"+p.Name)
	}
	if crit := criticalProcesses(t); !slices.Equal(procs, crit) {
		t.Errorf("manifest processes %v, critical_processes %v", procs, crit)
	}
	if !slices.Equal(m.CLI.Config, []string{"/cli/config/plugins/telegen.py"}) || !slices.Equal(m.CLI.Show, []string{"/cli/show/plugins/telegen.py"}) {
		t.Errorf("cli plugins %v %v, want /cli/config/plugins/telegen.py and /cli/show/plugins/telegen.py", m.CLI.Config, m.CLI.Show)
	}
	for _, p := range append(slices.Clone(m.CLI.Config), m.CLI.Show...) {
		// The images copy docker-telegen-sonic/cli/ to /cli/.
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("cli plugin %s: %v", p, err)
		}
	}

	var initCfg map[string]map[string]map[string]string
	data, err = os.ReadFile(filepath.Join(dir, "init_cfg.json"))
	must(t, err)
	must(t, json.Unmarshal(data, &initCfg))
	want := map[string]string{"state": "disabled", "auto_restart": "enabled", "delayed": "False",
		"has_global_scope": "True", "has_per_asic_scope": "False"}
	f := initCfg["FEATURE"]["telegen"]
	for k, v := range want {
		if f[k] != v {
			t.Errorf("init_cfg.json FEATURE|telegen %s = %q, want %q", k, f[k], v)
		}
	}
}

// dockerInstr is one instruction of a Dockerfile.
type dockerInstr struct {
	line int
	op   string
	args string
}

// parseDockerfile splits a Dockerfile into instructions (continuations joined, comments dropped).
func parseDockerfile(t testing.TB, text string) []dockerInstr {
	t.Helper()
	var out []dockerInstr
	var cur strings.Builder
	start := 0
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, cont := strings.CutSuffix(trimmed, "\\"); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{start, strings.ToUpper(op), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatal("Dockerfile ends in a continuation line")
	}
	return out
}

// copySources returns the sources of a COPY (JSON or shell form) and its --from stage.
func copySources(t testing.TB, in dockerInstr) (srcs []string, from string) {
	t.Helper()
	args := in.args
	for strings.HasPrefix(args, "--") {
		flag, rest, _ := strings.Cut(args, " ")
		if v, ok := strings.CutPrefix(flag, "--from="); ok {
			from = v
		}
		args = strings.TrimSpace(rest)
	}
	var parts []string
	if strings.HasPrefix(args, "[") {
		if err := json.Unmarshal([]byte(args), &parts); err != nil {
			t.Fatalf("line %d: COPY %s: %v", in.line, in.args, err)
		}
	} else {
		parts = strings.Fields(args)
	}
	if len(parts) < 2 {
		t.Fatalf("line %d: COPY needs a source and a destination: %s", in.line, in.args)
	}
	return parts[:len(parts)-1], from
}

// lintDockerfile checks what can be checked without docker: known instructions, FROM first,
// --from naming an earlier stage, every COPY source present in the build context, an
// ENTRYPOINT that runs supervisord.
func lintDockerfile(t *testing.T, name, text, context string, skip func(src string) bool) {
	t.Helper()
	known := []string{"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "ENTRYPOINT", "CMD", "LABEL", "USER", "EXPOSE", "VOLUME", "SHELL", "STOPSIGNAL", "HEALTHCHECK"}
	ins := parseDockerfile(t, text)
	stages := []string{}
	sawFrom := false
	entry := ""
	for _, in := range ins {
		if !slices.Contains(known, in.op) {
			t.Errorf("%s:%d: unknown instruction %s", name, in.line, in.op)
		}
		switch in.op {
		case "FROM":
			sawFrom = true
			f := strings.Fields(in.args)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages = append(stages, f[2])
			}
		case "ARG":
		default:
			if !sawFrom {
				t.Errorf("%s:%d: %s before FROM", name, in.line, in.op)
			}
		}
		if in.op == "ADD" {
			t.Errorf("%s:%d: use COPY, not ADD", name, in.line)
		}
		if in.op == "ENTRYPOINT" {
			entry = in.args
		}
		if in.op != "COPY" {
			continue
		}
		srcs, from := copySources(t, in)
		if from != "" {
			if !slices.Contains(stages, from) {
				t.Errorf("%s:%d: COPY --from=%s: no earlier stage of that name (%v)", name, in.line, from, stages)
			}
			continue
		}
		for _, src := range srcs {
			if skip != nil && skip(src) {
				continue
			}
			if _, err := os.Stat(filepath.Join(context, src)); err != nil {
				t.Errorf("%s:%d: COPY source %s: %v", name, in.line, src, err)
			}
		}
	}
	if !strings.Contains(entry, "supervisord") {
		t.Errorf("%s: ENTRYPOINT %q does not run supervisord", name, entry)
	}
}

// python3WithJinja returns a python3 that can import jinja2 (Debian's python3-jinja2), trying the
// one in PATH first, then Debian's.
func python3WithJinja(t testing.TB) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import jinja2").Run() == nil {
			return py
		}
	}
	testenv.Skip(t, "needs python3 with jinja2 (apt-get install python3-jinja2)")
	return ""
}

// renderJinja renders a template the way sonic-buildimage's j2 does, with vars and, for
// Dockerfile.j2, a stand-in of dockers/dockerfile-macros.j2 (only the macros it imports).
func renderJinja(t testing.TB, template string, vars map[string]string) string {
	t.Helper()
	py := python3WithJinja(t)
	const script = `
import json, sys, jinja2
macros = '''
{% macro copy_files(prefix, files, dest) %}COPY{% for f in files %} {{prefix}}/{{f}}{% endfor %} {{dest}}{% endmacro %}
{% macro install_debian_packages(pkgs) %}RUN dpkg -i{% for p in pkgs %} /debs/{{p}}{% endfor %} || apt-get -y install -f --no-remove{% endmacro %}
{% macro rsync_from_builder_stage() %}RUN --mount=type=bind,from=base,target=/changes-to-image rsync -axAX --no-D --exclude=/sys --exclude=resolv.conf /changes-to-image/ /{% endmacro %}
'''
env = jinja2.Environment(loader=jinja2.DictLoader({"dockers/dockerfile-macros.j2": macros}),
                         undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
src = open(sys.argv[1]).read()
print(env.from_string(src).render(**json.loads(sys.argv[2])), end="")
`
	v, err := json.Marshal(vars)
	must(t, err)
	out, err := exec.Command(py, "-c", script, template, string(v)).CombinedOutput()
	if err != nil {
		t.Fatalf("rendering %s: %v\n%s", template, err, out)
	}
	return string(out)
}

// TestPackagingDockerfiles lints the plain Dockerfile (build context: the repository root) and
// the rendered Dockerfile.j2 (context: docker-telegen-sonic/, as in sonic-buildimage).
func TestPackagingDockerfiles(t *testing.T) {
	dir := packagingDir(t)
	root := filepath.Dir(dir)
	plain, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	must(t, err)
	lintDockerfile(t, "Dockerfile", string(plain), root, nil)
	// The stand-ins in standalone/ must be installed under the names supervisord.conf uses.
	for _, want := range []string{"/usr/lib/python3/dist-packages/supervisord_dependent_startup.py",
		"/usr/bin/supervisor-proc-exit-listener-rs", "/etc/supervisor/conf.d/supervisord.conf",
		"/etc/supervisor/critical_processes", "/usr/bin/start.sh"} {
		if !strings.Contains(string(plain), want) {
			t.Errorf("Dockerfile does not install %s", want)
		}
	}

	rendered := renderJinja(t, filepath.Join(dir, "Dockerfile.j2"), map[string]string{
		"DOCKER_USERNAME": "admin", "DOCKER_USERTAG": "latest",
		"docker_telegen_sonic_debs": "telegen-sonic_0.1.0_amd64.deb",
	})
	if !strings.Contains(rendered, "ARG BASE=docker-config-engine-trixie-admin:latest") {
		t.Errorf("Dockerfile.j2 does not build on docker-config-engine-trixie:\n%s", rendered)
	}
	lintDockerfile(t, "Dockerfile.j2", rendered, dir, func(src string) bool { return strings.HasPrefix(src, "debs/") })
	for _, want := range []string{`COPY ["supervisord.conf", "/etc/supervisor/conf.d/"]`, `COPY ["critical_processes", "/etc/supervisor"]`,
		`ENTRYPOINT ["/usr/local/bin/supervisord"]`, "/debs/telegen-sonic_0.1.0_amd64.deb"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered Dockerfile.j2 lacks %s", want)
		}
	}
}

// TestPackagingUnitAndScripts renders the systemd unit, checks the shell scripts and the Python
// stand-ins parse, and runs the host wrapper against a fake docker.
func TestPackagingUnitAndScripts(t *testing.T) {
	dir := packagingDir(t)
	unit := renderJinja(t, filepath.Join(dir, "telegen.service.j2"), map[string]string{
		"sonicadmin_user": "admin", "docker_container_name": "telegen"})
	for _, want := range []string{"[Unit]", "Requires=database.service", "BindsTo=sonic.target",
		"User=admin", "ExecStartPre=/usr/bin/telegen.sh start", "ExecStart=/usr/bin/telegen.sh wait",
		"ExecStop=/usr/bin/telegen.sh stop", "WantedBy=sonic.target"} {
		if !slices.Contains(strings.Split(unit, "\n"), want) {
			t.Errorf("telegen.service lacks %q:\n%s", want, unit)
		}
	}
	if !strings.HasPrefix(unit, "[Unit]") {
		t.Errorf("telegen.service does not start with [Unit]:\n%s", unit)
	}

	scripts := []string{"start.sh", "base_image_files/telegen-sonic"}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", filepath.Join(dir, s)).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if st, err := os.Stat(filepath.Join(dir, s)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s must be executable", s)
		}
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		args := []string{}
		for _, s := range scripts {
			args = append(args, filepath.Join(dir, s))
		}
		if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	for _, py := range []string{"standalone/supervisord_dependent_startup.py", "standalone/supervisor-proc-exit-listener"} {
		src, err := os.ReadFile(filepath.Join(dir, py))
		must(t, err)
		cmd := exec.Command("python3", "-c", "import ast, sys; ast.parse(sys.stdin.read())")
		cmd.Stdin = bytes.NewReader(src)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", py, err, out)
		}
	}

	// The host wrapper: docker exec into the telegen container, arguments passed through, no
	// terminal flag when stdin is not a terminal.
	fake := t.TempDir()
	argsFile := filepath.Join(fake, "args")
	must(t, os.WriteFile(filepath.Join(fake, "docker"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+argsFile+"\n"), 0o755))
	cmd := exec.Command(filepath.Join(dir, "base_image_files", "telegen-sonic"), "status", "--job", "a b")
	cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("telegen-sonic wrapper: %v\n%s", err, out)
	}
	got, err := os.ReadFile(argsFile)
	must(t, err)
	if want := "exec\n-i\ntelegen\ntelegen-sonic\nstatus\n--job\na b\n"; string(got) != want {
		t.Errorf("wrapper ran docker with %q, want %q", got, want)
	}
}

// supervisorSetup is the container's supervisord.conf made runnable on the test host, and what
// it needs.
type supervisorSetup struct {
	dir      string // configuration, sockets, logs
	runDir   string // stands for the container's /var/run/telegen
	mainConf string // stands for /etc/supervisor/supervisord.conf of the base image
	ctl      string // supervisorctl
}

// substitute replaces old by new in the command of section, failing unless it occurs exactly
// once, so that a changed supervisord.conf cannot slip past the substitutions unnoticed.
func substitute(t testing.TB, conf *iniFile, section, old, new string) {
	t.Helper()
	s := conf.section(section)
	if s == nil {
		t.Fatalf("supervisord.conf has no [%s]", section)
	}
	if n := strings.Count(s.vals["command"], old); n != 1 {
		t.Fatalf("[%s] command %q: %q occurs %d times, want once", section, s.vals["command"], old, n)
	}
	s.vals["command"] = strings.Replace(s.vals["command"], old, new, 1)
}

// newSupervisorSetup writes the configuration. The substitutions, all of them:
//   - paths: /var/run/telegen becomes a temporary directory; the binaries are the ones this test
//     binary built; telegend and telegen-rest run inside the switch's network namespace
//     (nsenter --net, as the container runs with --net=host on a switch) and get --db-config for
//     the test's Redis (the container uses the default database_config.json); telegend also
//     gets the test's pin directory and a faster stats interval;
//   - the dependent-startup plugin and SONiC's proc-exit listener are not Debian packages: the
//     stand-ins the standalone image installs under their names run instead
//     (docker-telegen-sonic/standalone/), with -c for the configuration, which is not in a
//     default place here, and the repository's critical_processes;
//   - rsyslogd is a sleeping placeholder (a syslog daemon would take the host's /dev/log), and
//     program output goes to files instead of syslog;
//   - start.sh runs as it is, with TELEGEN_RUN_DIR for /var/run/telegen.
func newSupervisorSetup(t *testing.T, s *vswitch) *supervisorSetup {
	t.Helper()
	buildFrontends(t) // restBin
	testenv.RequireTool(t, "supervisord")
	ctl := testenv.RequireTool(t, "supervisorctl")
	if err := exec.Command("/usr/bin/python3", "-c", "import supervisor.childutils").Run(); err != nil {
		testenv.Skip(t, "needs Debian's supervisor (python3 module supervisor): %v", err)
	}
	pkg := packagingDir(t)
	dir, err := os.MkdirTemp("", "tg-sv")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	su := &supervisorSetup{dir: dir, runDir: filepath.Join(dir, "run"), mainConf: filepath.Join(dir, "supervisord.conf"), ctl: ctl}
	must(t, os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))

	conf := parseINI(t, filepath.Join(pkg, "supervisord.conf"))
	inNS := "nsenter --net=/run/netns/" + s.swNS + " -- "
	substitute(t, conf, "eventlistener:dependent-startup", "python3 -m supervisord_dependent_startup",
		"/usr/bin/python3 "+filepath.Join(pkg, "standalone", "supervisord_dependent_startup.py")+" -c "+su.mainConf)
	substitute(t, conf, "eventlistener:supervisor-proc-exit-listener", "/usr/bin/supervisor-proc-exit-listener-rs",
		"/usr/bin/python3 "+filepath.Join(pkg, "standalone", "supervisor-proc-exit-listener")+
			" --critical-processes "+filepath.Join(pkg, "critical_processes"))
	substitute(t, conf, "program:rsyslogd", "/usr/sbin/rsyslogd -n -iNONE", "/bin/sleep infinity")
	substitute(t, conf, "program:start", "/usr/bin/start.sh", filepath.Join(pkg, "start.sh"))
	conf.section("program:start").set("environment", `TELEGEN_RUN_DIR="`+su.runDir+`"`)
	substitute(t, conf, "program:telegend", "/usr/bin/telegend", inNS+telegendBin)
	substitute(t, conf, "program:telegend", "/var/run/telegen", su.runDir)
	conf.section("program:telegend").vals["command"] += " --db-config " + s.redis.ConfigPath +
		" --pin-dir " + s.pinDir + " --stats-interval 200ms"
	substitute(t, conf, "program:telegen-rest", "/usr/bin/telegen-rest", inNS+restBin)
	substitute(t, conf, "program:telegen-rest", "/var/run/telegen", su.runDir)
	conf.section("program:telegen-rest").vals["command"] += " --db-config " + s.redis.ConfigPath
	for _, sec := range conf.sections {
		if name, ok := strings.CutPrefix(sec.name, "program:"); ok {
			for _, stream := range []string{"stdout", "stderr"} {
				sec.set(stream+"_syslog", "false")
				sec.set(stream+"_logfile", filepath.Join(dir, name+"."+stream+".log"))
			}
		}
		if name, ok := strings.CutPrefix(sec.name, "eventlistener:"); ok {
			sec.set("stderr_logfile", filepath.Join(dir, name+".stderr.log")) // stdout is the event protocol
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "conf.d", "supervisord.conf"), []byte(conf.String()), 0o644))

	// The base image's main configuration: control socket, log and pid file, conf.d included.
	main := fmt.Sprintf(`[unix_http_server]
file=%[1]s/supervisor.sock
chmod=0700

[supervisord]
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock

[include]
files = conf.d/*.conf
`, dir)
	must(t, os.WriteFile(su.mainConf, []byte(main), 0o644))
	return su
}

// status is `supervisorctl status` as name -> state.
func (su *supervisorSetup) status(t testing.TB) (map[string]string, string) {
	t.Helper()
	out, _ := exec.Command(su.ctl, "-c", su.mainConf, "status").CombinedOutput() // exit 3 while any is not running
	st := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 {
			st[f[0]] = f[1]
		}
	}
	return st, string(out)
}

// logs returns the tail of every log under the setup's directory, for a failing test.
func (su *supervisorSetup) logs() string {
	var b strings.Builder
	paths, _ := filepath.Glob(filepath.Join(su.dir, "*.log"))
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", filepath.Base(p), data)
	}
	return b.String()
}

// TestSupervisord starts Debian's supervisord with the container's supervisord.conf (paths
// substituted, see newSupervisorSetup) on the virtual switch: the dependent startup brings up
// rsyslogd, start, telegend and telegen-rest in order, a job posted to telegen-rest's unix
// socket is served by telegend with exact counts, and when a critical process dies the exit
// listener takes the whole container (supervisord) down.
func TestSupervisord(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	pcap := genPcap(t, "all", 300)
	want := tsharkTruth(t, pcap)
	su := newSupervisorSetup(t, s)

	cmd := exec.Command("supervisord", "-n", "-c", su.mainConf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("supervisord output:\n%s\n%s", out.String(), su.logs())
		}
	})

	want0 := map[string]string{"rsyslogd": "RUNNING", "start": "EXITED", "telegend": "RUNNING", "telegen-rest": "RUNNING",
		"dependent-startup": "RUNNING", "supervisor-proc-exit-listener": "RUNNING"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, raw := su.status(t)
		ok := true
		for k, v := range want0 {
			ok = ok && st[k] == v
		}
		if ok {
			t.Logf("supervisorctl status:\n%s", raw)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("programs never all up; supervisorctl status:\n%s", raw)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A job through telegen-rest's unix socket; telegend's verdict comes back as 201.
	sock := filepath.Join(su.runDir, "telegen-rest.sock")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Post("http://telegen/v1/monitor/jobs", "application/json",
		strings.NewReader(`{"port":"Ethernet16","span_method":"direct","duration_sec":3}`))
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %s %s", resp.Status, body)
	}
	var created struct {
		ID     string `json:"job_id"`
		Status string `json:"status"`
	}
	must(t, json.Unmarshal(body, &created))
	rec := s.waitStatus(created.ID, "running", 2*time.Second)
	s.replay("Ethernet16", pcap)
	s.waitField(created.ID, "packets_total", strconv.Itoa(want.Frames), 2*time.Second)
	s.waitStatus(created.ID, "done", time.Until(parseTime(t, rec["expires_at"]))+2*time.Second)
	if res := s.result(created.ID); res["packets_total"] != strconv.Itoa(want.Frames) || res["bytes_total"] != strconv.FormatUint(want.Bytes, 10) {
		t.Errorf("result %v, want packets_total %d bytes_total %d", res, want.Frames, want.Bytes)
	}
	s.assertClean()

	// A critical process dies: the exit listener stops supervisord, as it stops the container
	// on a switch (systemd then restarts it).
	pidOut, err := exec.Command(su.ctl, "-c", su.mainConf, "pid", "telegend").Output()
	must(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidOut)))
	must(t, err)
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	select {
	case err := <-done:
		done <- err
		if !strings.Contains(su.logs(), "critical process telegend exited unexpectedly") {
			t.Errorf("supervisord exited (%v), but not through the exit listener", err)
		}
	case <-time.After(30 * time.Second):
		st, raw := su.status(t)
		t.Fatalf("supervisord still runs 30 s after telegend was killed (%v):\n%s", st, raw)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("telegen-rest's socket is still there after supervisord stopped")
	}
}

// startDaemonWithCaps is the harness's startDaemon with telegend confined to caps.
func (s *vswitch) startDaemonWithCaps(caps []int) *daemonProc {
	s.t.Helper()
	logPath := filepath.Join(s.t.TempDir(), "telegend.log")
	logFile, err := os.Create(logPath)
	must(s.t, err)
	args := []string{"--net=/run/netns/" + s.swNS, "--"}
	args = append(args, capshPrefix(s.t, telegendBin, caps)...)
	args = append(args, "--db-config", s.redis.ConfigPath, "--attach-mode", s.mode,
		"--pin-dir", s.pinDir, "--state-dir", s.stateDir, "--log-level", "debug",
		"--stats-interval", "200ms", "--resync-interval", "2s", "--sweep-interval", "2s")
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(s.t, cmd.Start())
	logFile.Close()
	d := &daemonProc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	s.daemon = d
	s.t.Cleanup(func() {
		if s.t.Failed() {
			data, _ := os.ReadFile(logPath)
			s.t.Logf("telegend log:\n%s", data)
		}
	})
	// nsenter and capsh exec, so the pid becomes telegend's once capsh has run it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); exe == telegendBin {
			return d
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pid %d never became telegend", cmd.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Linux capability numbers (include/uapi/linux/capability.h).
const (
	capNetAdmin = 12
	capPerfmon  = 38
	capBPF      = 39
)

var capNames = map[int]string{capNetAdmin: "cap_net_admin", capPerfmon: "cap_perfmon", capBPF: "cap_bpf"}

// leastCaps is what the telegen container is granted (docs/SONIC-INSTALL.md).
var leastCaps = []int{capBPF, capNetAdmin, capPerfmon}

// capMask is the /proc/<pid>/status bit mask of caps.
func capMask(caps []int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return m
}

// capshPrefix is the command that runs prog as root with exactly caps: every other capability
// leaves the bounding set, so that root's execve cannot regain it, and caps are made effective,
// permitted and inheritable. That is what docker --cap-drop=ALL --cap-add=... gives a container.
func capshPrefix(t testing.TB, prog string, caps []int) []string {
	t.Helper()
	capsh := testenv.RequireTool(t, "capsh")
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	must(t, err)
	n, err := strconv.Atoi(strings.TrimSpace(string(last)))
	must(t, err)
	var drop, keep []string
	for c := 0; c <= n; c++ {
		if slices.Contains(caps, c) {
			keep = append(keep, capNames[c])
		} else {
			drop = append(drop, strconv.Itoa(c))
		}
	}
	return []string{capsh, "--drop=" + strings.Join(drop, ","), "--caps=" + strings.Join(keep, ",") + "+eip", "--shell=" + prog, "--"}
}

// procCaps reads the capability sets of a process from /proc/<pid>/status.
func procCaps(t testing.TB, pid int) map[string]uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	out := map[string]uint64{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ":\t")
		if ok && strings.HasPrefix(k, "Cap") {
			n, err := strconv.ParseUint(v, 16, 64)
			must(t, err)
			out[k] = n
		}
	}
	return out
}

// TestLeastPrivilege runs telegend with only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (as root,
// as in the container, with every other capability gone from the bounding set) and shows a job
// working end to end: running, exact counts, adopted by a restarted daemon after kill -9, done,
// nothing left behind.
func TestLeastPrivilege(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			pcap := genPcap(t, "all", 300)
			want := tsharkTruth(t, pcap)
			d := s.startDaemonWithCaps(leastCaps)
			caps := procCaps(t, d.cmd.Process.Pid)
			for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
				if caps[set] != capMask(leastCaps) {
					t.Fatalf("telegend %s = %#x, want %#x (bpf, net_admin, perfmon only)", set, caps[set], capMask(leastCaps))
				}
			}

			s.putJob("lp", "port", "Ethernet16", "span_method", "direct", "duration_sec", "4")
			rec := s.waitStatus("lp", "running", 2*time.Second)
			s.replay("Ethernet16", pcap)
			s.waitField("lp", "packets_total", strconv.Itoa(want.Frames), 2*time.Second)

			// Adoption after a crash needs no more: the pins are reopened by path.
			d.kill()
			s.startDaemonWithCaps(leastCaps)
			s.replay("Ethernet16", pcap)
			s.waitField("lp", "packets_total", strconv.Itoa(2*want.Frames), 3*time.Second)
			s.waitField("lp", "bytes_total", strconv.FormatUint(2*want.Bytes, 10), time.Second)
			s.waitStatus("lp", "done", time.Until(parseTime(t, rec["expires_at"]))+2*time.Second)
			res := s.result("lp")
			if res["packets_total"] != strconv.Itoa(2*want.Frames) || res["bytes_total"] != strconv.FormatUint(2*want.Bytes, 10) {
				t.Errorf("result %v, want packets_total %d bytes_total %d", res, 2*want.Frames, 2*want.Bytes)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestCapabilityNeeds shows why each capability is granted (docs/SONIC-INSTALL.md): without
// CAP_BPF the job's maps cannot be created, without CAP_NET_ADMIN its tc programs cannot be
// loaded; without CAP_PERFMON the verifier refuses the parser's packet-pointer arithmetic
// ("pointer arithmetic with it prohibited for !root"). All three end as failed, attach_failed.
func TestCapabilityNeeds(t *testing.T) {
	for _, c := range []struct {
		drop       int
		wantStatus string
		wantReason string
	}{
		{capBPF, "failed", "attach_failed: "},
		{capNetAdmin, "failed", "attach_failed: "},
		{capPerfmon, "failed", "attach_failed: "},
	} {
		t.Run("without_"+capNames[c.drop], func(t *testing.T) {
			s := newSwitch(t, "tcx", "Ethernet16")
			var caps []int
			for _, cp := range leastCaps {
				if cp != c.drop {
					caps = append(caps, cp)
				}
			}
			s.startDaemonWithCaps(caps)
			s.putJob("c", "port", "Ethernet16", "span_method", "direct", "duration_sec", "30")
			rec := s.waitStatus("c", c.wantStatus, 3*time.Second)
			denied := strings.Contains(rec["reason"], "operation not permitted") || strings.Contains(rec["reason"], "permission denied")
			if !strings.HasPrefix(rec["reason"], c.wantReason) || (c.wantReason != "" && !denied) {
				t.Errorf("reason %q, want %q… operation not permitted / permission denied", rec["reason"], c.wantReason)
			}
			t.Logf("without %s: status %s, reason %q", capNames[c.drop], rec["status"], rec["reason"])
			if c.wantStatus == "running" {
				s.delJob("c")
				s.waitStatus("c", "stopped", 2*time.Second)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}
