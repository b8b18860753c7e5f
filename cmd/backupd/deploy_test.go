package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/fileperm"
)

// The deployment examples under deploy/ are checked here as far as a test can without a
// container engine, Kubernetes, Prometheus or Grafana: every file parses, the backupd config
// each example carries passes check-config with exactly the environment the example gives
// it, the wiring around it (mounts, probes, ports) fits the config and the image, and every
// backupd_* series the dashboard and the alert rules use is one the daemon exports.

const deployDir = "../../deploy"

// listenPort is what the image's HEALTHCHECK probes and the examples publish.
const listenPort = "9187"

// readDeployDocs decodes every YAML document (several per file too) and JSON file under
// deploy/, keyed by the path relative to deploy/.
func readDeployDocs(t *testing.T) map[string][]any {
	t.Helper()
	docs := map[string][]any{}
	err := filepath.WalkDir(deployDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(deployDir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch path.Ext(rel) {
		case ".json":
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Errorf("deploy/%s: %v", rel, err)
				return nil
			}
			docs[rel] = []any{v}
		case ".yaml", ".yml":
			dec := yaml.NewDecoder(bytes.NewReader(data))
			for i := 0; ; i++ {
				var v any
				err := dec.Decode(&v)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("deploy/%s: document %d: %v", rel, i+1, err)
					break
				}
				if v == nil {
					t.Errorf("deploy/%s: document %d is empty", rel, i+1)
					continue
				}
				docs[rel] = append(docs[rel], v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestDeployFilesParse(t *testing.T) {
	docs := readDeployDocs(t)
	for _, want := range []string{
		"compose/compose.yaml", "compose/backupd.yaml",
		"kubernetes/backupd.yaml", "kubernetes/servicemonitor.yaml",
		"grafana/backupd-dashboard.json", "prometheus/backupd-alerts.yaml",
	} {
		if len(docs[want]) == 0 {
			t.Errorf("deploy/%s: missing or without a document", want)
		}
	}
	for rel, ds := range docs {
		if !strings.HasPrefix(rel, "kubernetes/") {
			continue
		}
		for i, d := range ds {
			if ystr(d, "apiVersion") == "" || ystr(d, "kind") == "" || ystr(d, "metadata", "name") == "" {
				t.Errorf("deploy/%s: document %d lacks apiVersion, kind or metadata.name", rel, i+1)
			}
		}
	}
}

// Accessors for decoded YAML and JSON; a missing key gives the zero value, which the checks
// then report.

func yget(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func ystr(v any, keys ...string) string { s, _ := yget(v, keys...).(string); return s }

func ylist(v any, keys ...string) []any { l, _ := yget(v, keys...).([]any); return l }

func ystrs(v any, keys ...string) []string {
	var out []string
	for _, e := range ylist(v, keys...) {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// flagValue returns the value of --name in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// checkExampleConfig runs check-config in-process on file with exactly env set (dummy values),
// and checks that the daemon would listen where the image's health check probes.
func checkExampleConfig(t *testing.T, file string, env []string) {
	t.Helper()
	for _, name := range env {
		t.Setenv(name, "dummy-"+strings.ToLower(name))
	}
	var stdout, stderr bytes.Buffer
	if err := runCheckConfig(context.Background(), []string{"--config", file}, &stdout, &stderr); err != nil {
		t.Fatalf("backupd check-config with the example's environment %v:\n%v", env, err)
	}
	if !strings.HasPrefix(stdout.String(), "ok\n") {
		t.Errorf("check-config printed %q, want ok first", stdout.String())
	}
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") || port != listenPort {
		t.Errorf("got listen %q, want a wildcard address on port %s: in a container the daemon must answer outside loopback", cfg.Listen, listenPort)
	}
}

func TestDeployComposeConfig(t *testing.T) {
	docs := readDeployDocs(t)
	compose := docs["compose/compose.yaml"]
	if len(compose) != 1 {
		t.Fatalf("deploy/compose/compose.yaml: got %d documents, want 1", len(compose))
	}
	svc := yget(compose[0], "services", "backupd")
	if svc == nil {
		t.Fatal("compose.yaml has no backupd service")
	}
	for _, s := range []string{"db", "minio", "mailpit"} {
		if yget(compose[0], "services", s) == nil {
			t.Errorf("compose.yaml has no %s service", s)
		}
	}
	if got := ystr(svc, "build", "context"); got != "../.." {
		t.Errorf("backupd builds from %q, want ../.. (the repository's Dockerfile)", got)
	}
	cfgPath := flagValue(ystrs(svc, "command"), "config")
	// The bind-mounted file keeps the host's 0644, which backupd refuses; the entrypoint must
	// install a copy that satisfies the permission rule at the --config path.
	inside := composeInstalledConfig(t, ystrs(svc, "entrypoint"), cfgPath)
	var source string
	for _, v := range ystrs(svc, "volumes") {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == inside {
			source = parts[0]
			if len(parts) < 3 || parts[2] != "ro" {
				t.Errorf("the config is mounted as %q, want it read-only", v)
			}
		}
	}
	if source == "" {
		t.Fatalf("no volume of the backupd service mounts %q, what the entrypoint installs as the --config of its command %v", inside, ystrs(svc, "command"))
	}
	env, _ := yget(svc, "environment").(map[string]any)
	var names []string
	for k := range env {
		names = append(names, k)
	}
	// What the entrypoint does: a private copy of the mounted file.
	data, err := os.ReadFile(filepath.Join(deployDir, "compose", source))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), path.Base(cfgPath))
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkExampleConfig(t, file, names)
}

// imageUID is the uid and gid the image runs as (the Dockerfile's USER).
const imageUID = 10001

// installRe matches the entrypoint as written in compose.yaml, where $$ is a literal $.
var installRe = regexp.MustCompile(`\binstall -m (0?[0-7]{3}) (\S+) (\S+) && exec backupd "\$\$@"`)

// composeInstalledConfig checks that the Compose entrypoint installs the config at cfgPath
// with a mode the permission rule accepts for a file the daemon owns, and returns the path it
// installs it from.
func composeInstalledConfig(t *testing.T, entrypoint []string, cfgPath string) string {
	t.Helper()
	m := installRe.FindStringSubmatch(strings.Join(entrypoint, " "))
	if m == nil {
		t.Fatalf("the backupd service's entrypoint %q does not install the config with a mode (install -m MODE SRC DST && exec backupd \"$@\")", entrypoint)
	}
	mode, _ := strconv.ParseUint(m[1], 8, 32)
	if m[3] != cfgPath {
		t.Errorf("the entrypoint installs %s, want the --config path %s", m[3], cfgPath)
	}
	if !fileperm.Private(imageUID, imageUID, fs.FileMode(mode), imageUID, []int{imageUID}) {
		t.Errorf("the entrypoint installs the config with mode %s, which backupd refuses", m[1])
	}
	return m[2]
}

// checkKubernetesVolumeModes checks that every ConfigMap and Secret volume the container
// mounts gives files that the permission rule accepts: kubelet writes them owned by root,
// with the volume's defaultMode (0644 when unset) and, under fsGroup, group fsGroup and the
// group-read bits added.
func checkKubernetesVolumeModes(t *testing.T, pod, c any) {
	t.Helper()
	intOf := func(v any) (int, bool) { n, ok := v.(int); return n, ok }
	uid, _ := intOf(yget(pod, "securityContext", "runAsUser"))
	if uid == 0 {
		t.Errorf("runAsUser is %d, want the image's uid %d: as root, group-readable keys are refused", uid, imageUID)
	}
	fsGroup, hasFSGroup := intOf(yget(pod, "securityContext", "fsGroup"))
	var groups []int
	if g, ok := intOf(yget(pod, "securityContext", "runAsGroup")); ok {
		groups = append(groups, g)
	}
	if hasFSGroup {
		groups = append(groups, fsGroup)
	}
	mounted := map[string]bool{}
	for _, m := range ylist(c, "volumeMounts") {
		mounted[ystr(m, "name")] = true
	}
	checked := 0
	for _, v := range ylist(pod, "volumes") {
		src := yget(v, "secret")
		if src == nil {
			src = yget(v, "configMap")
		}
		if src == nil || !mounted[ystr(v, "name")] {
			continue
		}
		checked++
		mode := 0o644
		if m, ok := intOf(yget(src, "defaultMode")); ok {
			mode = m
		}
		gid := 0
		if hasFSGroup {
			gid = fsGroup
			mode |= 0o440
		}
		if !fileperm.Private(0, uint32(gid), fs.FileMode(mode), uid, groups) {
			t.Errorf("volume %s: files root:%d mode %04o, read by uid %d in groups %v, are refused by backupd; set defaultMode: 0440 and fsGroup: %d",
				ystr(v, "name"), gid, mode, uid, groups, imageUID)
		}
	}
	if checked < 2 {
		t.Errorf("checked %d ConfigMap or Secret volumes, want at least the config and the keys", checked)
	}
}

func TestDeployKubernetesConfig(t *testing.T) {
	docs := readDeployDocs(t)["kubernetes/backupd.yaml"]
	byKind := map[string][]any{}
	for _, d := range docs {
		byKind[ystr(d, "kind")] = append(byKind[ystr(d, "kind")], d)
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["Service"]) != 1 {
		t.Fatalf("got %d Deployments and %d Services, want one each", len(byKind["Deployment"]), len(byKind["Service"]))
	}
	dep := byKind["Deployment"][0]
	if r, _ := yget(dep, "spec", "replicas").(int); r != 2 {
		t.Errorf("got %d replicas, want 2 sharing the policy", r)
	}
	pod := yget(dep, "spec", "template", "spec")
	containers := ylist(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(containers))
	}
	c := containers[0]
	checkKubernetesVolumeModes(t, pod, c)
	named := func(kind, name string) any {
		for _, d := range byKind[kind] {
			if ystr(d, "metadata", "name") == name {
				return d
			}
		}
		return nil
	}

	// The environment: env entries and every key of the Secrets in envFrom.
	var env []string
	for _, e := range ylist(c, "env") {
		env = append(env, ystr(e, "name"))
	}
	for _, ef := range ylist(c, "envFrom") {
		name := ystr(ef, "secretRef", "name")
		sec := named("Secret", name)
		if sec == nil {
			t.Errorf("envFrom names Secret %q, which the manifests do not define", name)
			continue
		}
		for _, field := range []string{"stringData", "data"} {
			m, _ := yget(sec, field).(map[string]any)
			for k := range m {
				env = append(env, k)
			}
		}
	}

	// The config: --config must be a key of the ConfigMap mounted at its directory.
	cfgPath := flagValue(ystrs(c, "args"), "config")
	mounts := map[string]string{} // mount path → volume name
	for _, m := range ylist(c, "volumeMounts") {
		mounts[ystr(m, "mountPath")] = ystr(m, "name")
	}
	volumes := map[string]any{}
	for _, v := range ylist(pod, "volumes") {
		volumes[ystr(v, "name")] = v
	}
	vol := volumes[mounts[path.Dir(cfgPath)]]
	cm := named("ConfigMap", ystr(vol, "configMap", "name"))
	data := ystr(cm, "data", path.Base(cfgPath))
	if data == "" {
		t.Fatalf("--config %s is not a key of a ConfigMap mounted at %s", cfgPath, path.Dir(cfgPath))
	}
	file := filepath.Join(t.TempDir(), path.Base(cfgPath))
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	checkExampleConfig(t, file, env)
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}

	// Keys come from a Secret mounted where the config looks for them.
	if id := cfg.Encryption.IdentityFile; id != "" {
		v := volumes[mounts[filepath.Dir(id)]]
		if ystr(v, "secret", "secretName") == "" {
			t.Errorf("identity_file %s is not in a directory a Secret is mounted at", id)
		}
	}

	// Probes and the Service reach the port the config listens on, by its name.
	var portName string
	for _, p := range ylist(c, "ports") {
		if n, _ := yget(p, "containerPort").(int); n > 0 && strings.HasSuffix(cfg.Listen, ":"+strconv.Itoa(n)) {
			portName = ystr(p, "name")
		}
	}
	if portName == "" {
		t.Fatalf("no named container port matches listen %s", cfg.Listen)
	}
	for _, pr := range []struct{ probe, path string }{{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}} {
		if got, port := ystr(c, pr.probe, "httpGet", "path"), ystr(c, pr.probe, "httpGet", "port"); got != pr.path || port != portName {
			t.Errorf("%s: got %s on port %q, want %s on port %q", pr.probe, got, port, pr.path, portName)
		}
	}
	svc := byKind["Service"][0]
	var svcPort bool
	for _, p := range ylist(svc, "spec", "ports") {
		svcPort = svcPort || (ystr(p, "name") == portName && ystr(p, "targetPort") == portName)
	}
	if !svcPort {
		t.Errorf("the Service has no port named %q targeting the container's %q, which a ServiceMonitor selects", portName, portName)
	}
	sm := readDeployDocs(t)["kubernetes/servicemonitor.yaml"]
	if len(sm) != 1 || ystr(ylist(sm[0], "spec", "endpoints")[0], "port") != portName {
		t.Errorf("the ServiceMonitor does not scrape the port %q", portName)
	}
}

// promExprs returns the PromQL expressions of the dashboard (targets and template variable
// queries) and of the alert rules, each with where it comes from.
func promExprs(t *testing.T, docs map[string][]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || k == "query" || k == "definition") && strings.Contains(s, "backupd_") {
					out[where+"."+k+": "+s] = s
				}
				walk(where+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(where+"["+strconv.Itoa(i)+"]", e)
			}
		}
	}
	walk("grafana/backupd-dashboard.json", docs["grafana/backupd-dashboard.json"][0])
	for _, g := range ylist(docs["prometheus/backupd-alerts.yaml"][0], "groups") {
		for _, r := range ylist(g, "rules") {
			out["rule "+ystr(r, "alert")] = ystr(r, "expr")
		}
	}
	return out
}

var (
	selectorRe = regexp.MustCompile(`\b(backupd_[A-Za-z0-9_]+)\b(\{[^}]*\})?`)
	matcherRe  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	groupingRe = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
)

func TestDeployMetricsExported(t *testing.T) {
	series, err := daemon.ExportedSeries()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]daemon.Series{}
	for _, s := range series {
		exported[s.Name] = s
	}
	// resolve maps a name as queried to the family exporting it, with the labels the query
	// may use: a histogram's _bucket adds le.
	resolve := func(name string) (daemon.Series, []string, bool) {
		if s, ok := exported[name]; ok {
			return s, s.Labels, true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suf)
			s, found := exported[base]
			if !ok || !found || (s.Type != "histogram" && !(s.Type == "summary" && suf != "_bucket")) {
				continue
			}
			if suf == "_bucket" {
				return s, append(slices.Clone(s.Labels), "le"), true
			}
			return s, s.Labels, true
		}
		return daemon.Series{}, nil, false
	}
	// Label values backupd sets, where a query selects on them.
	values := map[string][]string{"job": {daemon.KindBackup, daemon.KindDrill}}

	exprs := promExprs(t, readDeployDocs(t))
	used := map[string]bool{}
	for where, expr := range exprs {
		if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") ||
			strings.Count(expr, "[") != strings.Count(expr, "]") {
			t.Errorf("%s: unbalanced brackets in %q", where, expr)
		}
		// Labels any metric of the expression has, plus what Prometheus adds when scraping.
		known := map[string]bool{"instance": true, "job": true}
		for _, m := range selectorRe.FindAllStringSubmatch(expr, -1) {
			name, sel := m[1], m[2]
			s, labels, ok := resolve(name)
			if !ok {
				t.Errorf("%s: %s is not a series backupd exports", where, name)
				continue
			}
			used[s.Name] = true
			for _, l := range labels {
				known[l] = true
			}
			for _, lm := range matcherRe.FindAllStringSubmatch(sel, -1) {
				label, op, val := lm[1], lm[2], lm[3]
				if !slices.Contains(labels, label) && label != "instance" {
					t.Errorf("%s: %s has no label %s (it has %v)", where, name, label, labels)
				}
				if want, ok := values[label]; ok && op == "=" && !slices.Contains(want, val) {
					t.Errorf("%s: %s{%s=%q}: backupd sets %s to one of %v", where, name, label, val, label, want)
				}
			}
		}
		for _, g := range groupingRe.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !known[l] {
					t.Errorf("%s: groups by %s, a label none of its series has", where, l)
				}
			}
		}
	}

	// What the dashboard and the rules are for must be there.
	for _, name := range []string{
		"backupd_newest_set_timestamp_seconds", "backupd_last_success_timestamp_seconds", "backupd_last_backup_bytes",
		"backupd_last_run_duration_seconds", "backupd_drill_rto_seconds", "backupd_drill_rpo_seconds",
		"backupd_drill_last_success", "backupd_target_operations_total", "backupd_target_last_backup_success",
	} {
		if !used[name] {
			t.Errorf("%s is used by neither the dashboard nor the alert rules", name)
		}
	}
}

func TestDeployAlertRules(t *testing.T) {
	doc := readDeployDocs(t)["prometheus/backupd-alerts.yaml"][0]
	got := map[string]bool{}
	for _, g := range ylist(doc, "groups") {
		for _, r := range ylist(g, "rules") {
			name := ystr(r, "alert")
			got[name] = true
			if ystr(r, "expr") == "" || ystr(r, "labels", "severity") == "" || ystr(r, "annotations", "summary") == "" {
				t.Errorf("rule %q: want expr, labels.severity and annotations.summary", name)
			}
			if f := ystr(r, "for"); f != "" {
				if _, err := time.ParseDuration(f); err != nil {
					t.Errorf("rule %q: for: %v", name, err)
				}
			}
		}
	}
	for _, want := range []string{"BackupdBackupStale", "BackupdBackupFailed", "BackupdDrillFailed", "BackupdDrillRTOAboveLimit", "BackupdTargetFailing"} {
		if !got[want] {
			t.Errorf("no alert %s", want)
		}
	}
}
