package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"
)

// The files under deploy/ start dss-sync with flags, environment variables
// and config files of their own. These tests run each of those command lines
// through loadConfig, the parser `dss-sync serve` uses, so a setting renamed
// or removed in config.go, or misspelled in a deploy file, fails here; and
// they check that the files agree with each other (peers, ports, volumes,
// the NATS users).

const deployDir = "../../deploy"

// deployPasswords are the values the tests give the NATS_PASS_* variables
// that deploy/nats-cluster references.
var deployPasswords = map[string]string{
	"NATS_PASS_PARIS": "paris-secret",
	"NATS_PASS_LYON":  "lyon-secret",
	"NATS_PASS_NICE":  "nice-secret",
}

var deployVarRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// deployExpand replaces $VAR and ${VAR} (also ${VAR:?msg}, ${VAR:-default})
// as compose and the shell would, with the value in deployPasswords or a
// dummy one; $$ is a literal $.
func deployExpand(s string) string {
	return deployVarRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := deployVarRE.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := deployPasswords[name]; ok {
			return v
		}
		return "dummy-" + strings.ToLower(name)
	})
}

// deployServe runs a deploy file's `serve ...` arguments and environment
// through loadConfig. Every DSS_SYNC_ variable must name a real setting:
// loadConfig itself ignores unknown ones.
func deployServe(t *testing.T, where string, args []string, environ map[string]string) *Config {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("%s: command %q does not start with serve", where, args)
	}
	known := map[string]bool{"DSS_SYNC_CONFIG": true}
	for _, s := range settings {
		known[s.env()] = true
	}
	expanded := map[string]string{}
	for k, v := range environ {
		if strings.HasPrefix(k, "DSS_SYNC_") && !known[k] {
			t.Errorf("%s: %s is not the environment variable of any serve setting", where, k)
		}
		expanded[k] = deployExpand(v)
	}
	var rest []string
	for _, a := range args[1:] {
		rest = append(rest, deployExpand(a))
	}
	cfg, err := loadConfig(rest, env(expanded))
	if err != nil {
		t.Fatalf("%s: serve %q: %v", where, rest, err)
	}
	return cfg
}

// deploySameSet reports whether a and b hold the same strings, in any order.
func deploySameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// deployPort returns the port of host:port.
func deployPort(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%s: %q has no port", where, hostport)
	}
	return n
}

// deployWildcard fails the test unless addr listens on every interface, as
// it must to be reached from another container or pod.
func deployWildcard(t *testing.T, where, addr string) {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("%s: %s listens on %s only: other containers cannot reach it", where, addr, host)
	}
}

// TestDeployDockerfile checks the image's default command, and that the
// build stage's Go matches go.mod.
func TestDeployDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var entrypoint, cmd []string
	var volumes, expose []string
	environ := map[string]string{}
	var goImage string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "FROM":
			if strings.HasPrefix(rest, "golang:") {
				goImage = strings.Fields(rest)[0]
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT is not in exec form: %v", err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("CMD is not in exec form: %v", err)
			}
		case "VOLUME":
			volumes = append(volumes, strings.Fields(rest)...)
		case "EXPOSE":
			expose = append(expose, strings.Fields(rest)...)
		case "ENV":
			k, v, ok := strings.Cut(rest, "=")
			if !ok {
				t.Fatalf("ENV %s: use the KEY=value form", rest)
			}
			environ[k] = v
		}
	}
	if len(entrypoint) != 1 || filepath.Base(entrypoint[0]) != "dss-sync" {
		t.Fatalf("ENTRYPOINT %q, want the dss-sync binary alone", entrypoint)
	}
	cfg := deployServe(t, "Dockerfile CMD", cmd, environ)
	if !slices.Contains(volumes, cfg.DataDir) {
		t.Errorf("data dir %s is not a VOLUME (%q)", cfg.DataDir, volumes)
	}
	if environ["DSS_SYNC_DATA_DIR"] != cfg.DataDir {
		t.Errorf("ENV DSS_SYNC_DATA_DIR=%s, serve uses %s: client commands in the container would miss admin.key", environ["DSS_SYNC_DATA_DIR"], cfg.DataDir)
	}
	for _, addr := range []string{cfg.HTTPAddr, cfg.NATSListen} {
		deployWildcard(t, "Dockerfile CMD", addr)
		if p := strconv.Itoa(deployPort(t, "Dockerfile CMD", addr)); !slices.Contains(expose, p) {
			t.Errorf("port %s of %s is not in EXPOSE %q", p, addr, expose)
		}
	}

	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goLine == nil || goImage != "golang:"+string(goLine[1]) {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod's go line)", goImage, goLine[1])
	}
}

// composeFile is the part of a compose file these tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string    `yaml:"image"`
		Build       yaml.Node `yaml:"build"`
		Command     yaml.Node `yaml:"command"`
		Environment yaml.Node `yaml:"environment"`
		Volumes     []string  `yaml:"volumes"`
		Ports       []string  `yaml:"ports"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// composeSite is one dss-sync service of a compose file, its settings as
// serve reads them.
type composeSite struct {
	cfg     *Config
	volumes []string
	ports   []string
}

func readCompose(t *testing.T, path string) (*composeFile, map[string]composeSite) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sites := map[string]composeSite{}
	for name, svc := range f.Services {
		if !strings.HasPrefix(svc.Image, "dss-sync") {
			continue
		}
		var args []string
		switch svc.Command.Kind {
		case yaml.SequenceNode:
			if err := svc.Command.Decode(&args); err != nil {
				t.Fatalf("%s: %s: command: %v", path, name, err)
			}
		case yaml.ScalarNode:
			args = strings.Fields(svc.Command.Value)
		}
		environ := map[string]string{}
		switch svc.Environment.Kind {
		case yaml.MappingNode:
			if err := svc.Environment.Decode(&environ); err != nil {
				t.Fatalf("%s: %s: environment: %v", path, name, err)
			}
		case yaml.SequenceNode:
			var list []string
			if err := svc.Environment.Decode(&list); err != nil {
				t.Fatalf("%s: %s: environment: %v", path, name, err)
			}
			for _, kv := range list {
				k, v, _ := strings.Cut(kv, "=")
				environ[k] = v
			}
		}
		cfg := deployServe(t, path+": "+name, args, environ)
		if cfg.Site != name {
			t.Errorf("%s: service %s runs site %q: name them alike, peers find a site by its service name", path, name, cfg.Site)
		}
		deployWildcard(t, path+": "+name, cfg.HTTPAddr)
		if p := deployPort(t, name, cfg.HTTPAddr); p != 8080 {
			t.Errorf("%s: %s serves HTTP on %d, the image exposes 8080", path, name, p)
		}
		var onVolume bool
		for _, v := range svc.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if _, named := f.Volumes[src]; named && dst == cfg.DataDir {
				onVolume = true
			}
		}
		if !onVolume {
			t.Errorf("%s: %s keeps its data dir %s off a named volume (%q)", path, name, cfg.DataDir, svc.Volumes)
		}
		sites[name] = composeSite{cfg: cfg, volumes: svc.Volumes, ports: svc.Ports}
	}
	if len(sites) != 3 {
		t.Fatalf("%s: %d dss-sync services, want 3", path, len(sites))
	}
	// Distinct volumes (a data dir belongs to one site) and host ports.
	seen := map[string]string{}
	for name, s := range sites {
		for _, v := range s.volumes {
			if other, dup := seen[v]; dup {
				t.Errorf("%s: %s and %s share %s", path, name, other, v)
			}
			seen[v] = name
		}
		for _, p := range s.ports {
			host := p[:strings.LastIndex(p, ":")]
			if other, dup := seen[host]; dup {
				t.Errorf("%s: %s and %s publish on one host port %s", path, name, other, host)
			}
			seen[host] = name
		}
	}
	return &f, sites
}

// TestDeployComposeMesh checks deploy/compose: three sites, each naming the
// two others as peers on their embedded NATS servers.
func TestDeployComposeMesh(t *testing.T) {
	_, sites := readCompose(t, filepath.Join(deployDir, "compose", "compose.yaml"))
	for name, s := range sites {
		if s.cfg.NATSURL != "" {
			t.Errorf("%s: --nats-url %s: the mesh runs the embedded servers", name, s.cfg.NATSURL)
		}
		deployWildcard(t, name, s.cfg.NATSListen)
		var want []string
		for other := range sites {
			if other != name {
				want = append(want, "nats://"+other+":"+strconv.Itoa(deployPort(t, other, sites[other].cfg.NATSListen)))
			}
		}
		if !deploySameSet(s.cfg.Peers, want) {
			t.Errorf("%s: peers %q, want the two other sites: %q", name, s.cfg.Peers, want)
		}
	}
}

// TestDeployNATSCluster checks deploy/nats-cluster: three nodes of one
// JetStream cluster, each routing to all three, a user per site; and the
// compose file's sites, which all use the cluster through --nats-url, each
// as its own user, with a replica of their streams on every node.
func TestDeployNATSCluster(t *testing.T) {
	for k, v := range deployPasswords {
		t.Setenv(k, v)
	}
	dir := filepath.Join(deployDir, "nats-cluster")
	confs, err := filepath.Glob(filepath.Join(dir, "nats-*.conf"))
	if err != nil || len(confs) != 3 {
		t.Fatalf("nats-*.conf: %q %v, want 3", confs, err)
	}
	var users map[string]string // user -> password, the same in every file
	var first *server.Options
	names := map[string]bool{}
	for _, conf := range confs {
		o, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(conf), ".conf")
		if o.ServerName != base || names[o.ServerName] {
			t.Errorf("%s: server_name %q: want %q, unique", conf, o.ServerName, base)
		}
		names[o.ServerName] = true
		if !o.JetStream || o.StoreDir == "" || o.JetStreamMaxStore <= 0 {
			t.Errorf("%s: jetstream=%v store_dir=%q max_file_store=%d: want JetStream on, with a store and a cap", conf, o.JetStream, o.StoreDir, o.JetStreamMaxStore)
		}
		if o.Port != 4222 || o.HTTPPort != 8222 {
			t.Errorf("%s: client port %d, monitor port %d: want 4222 and 8222", conf, o.Port, o.HTTPPort)
		}
		if o.Cluster.Name != "dss" || o.Cluster.Port != 6222 || len(o.Routes) != 3 {
			t.Errorf("%s: cluster %q on %d with %d routes, want dss on 6222 with 3", conf, o.Cluster.Name, o.Cluster.Port, len(o.Routes))
		}
		var routed []string
		for _, r := range o.Routes {
			routed = append(routed, r.Hostname())
		}
		slices.Sort(routed)
		if !slices.Equal(routed, []string{"nats-1", "nats-2", "nats-3"}) {
			t.Errorf("%s: routes to %q, want nats-1, nats-2, nats-3", conf, routed)
		}
		var accounts []string
		these := map[string]string{}
		for _, u := range o.Users {
			these[u.Username] = u.Password
			if u.Account != nil && !slices.Contains(accounts, u.Account.Name) {
				accounts = append(accounts, u.Account.Name)
			}
		}
		if len(these) != 3 || len(accounts) != 1 {
			t.Errorf("%s: %d users in accounts %q: want one user per site, in one account (sites read each other's streams)", conf, len(these), accounts)
		}
		if first == nil {
			first, users = o, these
		} else if !maps.Equal(these, users) {
			t.Errorf("%s: users %v differ from %s's %v", conf, these, confs[0], users)
		}
	}
	for user, pass := range users {
		if want := deployPasswords["NATS_PASS_"+strings.ToUpper(user)]; pass != want {
			t.Errorf("user %s has password %q, want $NATS_PASS_%s (%q)", user, pass, strings.ToUpper(user), want)
		}
	}

	// The sites: --nats-url to all three nodes, as their own user, and
	// --stream-replicas 3, so that losing a node loses no stream.
	f, sites := readCompose(t, filepath.Join(dir, "compose.yaml"))
	for _, node := range []string{"nats-1", "nats-2", "nats-3"} {
		if !slices.Contains(f.Services[node].Volumes, "./"+node+".conf:/etc/nats/nats.conf:ro") {
			t.Errorf("compose.yaml: %s does not mount %s.conf: %q", node, node, f.Services[node].Volumes)
		}
	}
	for name, s := range sites {
		if len(s.cfg.Peers) != 0 || s.cfg.NATSURL == "" {
			t.Errorf("%s: peers %q, nats-url %q: want the cluster through --nats-url alone", name, s.cfg.Peers, s.cfg.NATSURL)
			continue
		}
		if s.cfg.Replicas != len(confs) {
			t.Errorf("%s: --stream-replicas %d, want %d: a replica of each stream on every node, so that one node down leaves every stream a quorum", name, s.cfg.Replicas, len(confs))
		}
		var hosts []string
		for _, raw := range strings.Split(s.cfg.NATSURL, ",") {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, u.Host)
			pass, _ := u.User.Password()
			if u.User.Username() != name || pass != users[name] {
				t.Errorf("%s: connects as %q, password %q: want its own user of the cluster", name, u.User.Username(), pass)
			}
		}
		if !slices.Equal(hosts, []string{"nats-1:4222", "nats-2:4222", "nats-3:4222"}) {
			t.Errorf("%s: --nats-url to %q, want every node", name, hosts)
		}
	}

	// One node, started alone: its users get in with their passwords, and
	// their account has JetStream; a client without a user is refused.
	first.Host, first.Port, first.HTTPPort = "127.0.0.1", -1, 0
	first.Cluster, first.Routes = server.ClusterOpts{}, nil
	first.StoreDir = t.TempDir()
	first.NoLog, first.NoSigs = true, true
	srv, err := server.NewServer(first)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-1 did not start")
	}
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Error("a client without a user was let in")
	}
	for user, pass := range users {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, pass))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		js, err := natsjs.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateOrUpdateStream(t.Context(), natsjs.StreamConfig{Name: "DSS-" + user, Subjects: []string{"dss." + user + ".ev.>"}}); err != nil {
			t.Errorf("%s: no JetStream in its account: %v", user, err)
		}
		nc.Close()
	}
}

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// StatefulSet
		ServiceName string `yaml:"serviceName"`
		Replicas    *int   `yaml:"replicas"`
		Template    struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		// Service
		Type      string    `yaml:"type"`
		ClusterIP string    `yaml:"clusterIP"`
		Selector  yaml.Node `yaml:"selector"` // a StatefulSet's differs
		Ports     []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name string   `yaml:"name"`
	Args []string `yaml:"args"`
	Env  []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	StartupProbe    *k8sProbe `yaml:"startupProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	Resources struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

func readK8s(t *testing.T, name string) []k8sObject {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []k8sObject
	dec := yaml.NewDecoder(bufio.NewReader(f))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, len(objs)+1, err)
		}
		if o.Kind == "" {
			t.Fatalf("%s: document %d has no kind", name, len(objs)+1)
		}
		objs = append(objs, o)
	}
}

// TestDeployKubernetes checks deploy/kubernetes: one StatefulSet of one
// replica per site, its serve arguments, data on the claimed volume, probes
// on the HTTP port, the security context, the mesh of peers through the
// sites' Services, and those Services.
func TestDeployKubernetes(t *testing.T) {
	services := map[string]k8sObject{}
	for _, o := range readK8s(t, "service.yaml") {
		if o.Kind != "Service" {
			t.Fatalf("service.yaml holds a %s", o.Kind)
		}
		services[o.Metadata.Name] = o
	}
	peersOf := map[string][]string{}
	natsPort := map[string]int{}
	sets := readK8s(t, "statefulset.yaml")
	if len(sets) != 3 {
		t.Fatalf("statefulset.yaml: %d objects, want 3 StatefulSets", len(sets))
	}
	for _, o := range sets {
		name := o.Metadata.Name
		if o.Kind != "StatefulSet" || o.Spec.Replicas == nil || *o.Spec.Replicas != 1 {
			t.Fatalf("%s: a %s of %v replicas, want a StatefulSet of 1", name, o.Kind, o.Spec.Replicas)
		}
		if len(o.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", name, len(o.Spec.Template.Spec.Containers))
		}
		c := o.Spec.Template.Spec.Containers[0]
		environ := map[string]string{}
		for _, e := range c.Env {
			environ[e.Name] = e.Value
		}
		cfg := deployServe(t, name, c.Args, environ)
		if "dss-sync-"+cfg.Site != name {
			t.Errorf("StatefulSet %s runs site %q", name, cfg.Site)
		}
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		deployWildcard(t, name, cfg.HTTPAddr)
		deployWildcard(t, name, cfg.NATSListen)
		if p := deployPort(t, name, cfg.HTTPAddr); ports["http"] != p {
			t.Errorf("%s: serves HTTP on %d, containerPort http is %d", name, p, ports["http"])
		}
		if p := deployPort(t, name, cfg.NATSListen); ports["nats"] != p {
			t.Errorf("%s: NATS listens on %d, containerPort nats is %d", name, p, ports["nats"])
		}
		natsPort[cfg.Site] = ports["nats"]
		peersOf[cfg.Site] = cfg.Peers

		var onClaim bool
		for _, m := range c.VolumeMounts {
			for _, v := range o.Spec.VolumeClaimTemplates {
				if m.Name == v.Metadata.Name && strings.HasPrefix(cfg.DataDir+"/", strings.TrimSuffix(m.MountPath, "/")+"/") {
					onClaim = true
				}
			}
		}
		if !onClaim {
			t.Errorf("%s: data dir %s is not on a volumeClaimTemplate's mount", name, cfg.DataDir)
		}
		for _, p := range []struct {
			kind  string
			probe *k8sProbe
			path  string
		}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "http" {
				t.Errorf("%s: %s probe %+v, want GET %s on port http", name, p.kind, p.probe, p.path)
			}
		}
		sc := c.SecurityContext
		if !o.Spec.Template.Spec.SecurityContext.RunAsNonRoot || !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("%s: security context %+v: want non-root, a read-only root, no privilege escalation, every capability dropped", name, sc)
		}
		if c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: no memory limit", name)
		}

		headless, ok := services[o.Spec.ServiceName]
		if !ok || headless.Spec.ClusterIP != "None" {
			t.Errorf("%s: serviceName %q is not a headless Service of service.yaml", name, o.Spec.ServiceName)
		}
		svc, ok := services[name]
		if !ok || svc.Spec.ClusterIP == "None" {
			t.Errorf("%s: no ClusterIP Service of that name in service.yaml", name)
			continue
		}
		var selector map[string]string
		if err := svc.Spec.Selector.Decode(&selector); err != nil || len(selector) == 0 {
			t.Errorf("Service %s: selector: %v", name, err)
		}
		for k, v := range selector {
			if o.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, which the pods of %s do not carry", name, k, v, name)
			}
		}
		for _, p := range svc.Spec.Ports {
			if ports[p.TargetPort] != p.Port {
				t.Errorf("Service %s: port %s %d targets %q, the container's is %d", name, p.Name, p.Port, p.TargetPort, ports[p.TargetPort])
			}
		}
	}
	for site, peers := range peersOf {
		var want []string
		for other := range peersOf {
			if other != site {
				want = append(want, fmt.Sprintf("nats://dss-sync-%s:%d", other, natsPort[other]))
			}
		}
		if !deploySameSet(peers, want) {
			t.Errorf("%s: peers %q, want the two other sites' Services: %q", site, peers, want)
		}
	}
}

// TestDeploySystemd checks the unit's ExecStart through loadConfig, with the
// sample config in place of /etc/dss-sync/dss-sync.yaml, and that the data
// dir is the unit's StateDirectory and the stop timeout covers the graceful
// stop.
func TestDeploySystemd(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "systemd", "dss-sync.service"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Service]" && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	if len(keys["ExecStart"]) != 1 {
		t.Fatalf("ExecStart: %q, want one", keys["ExecStart"])
	}
	argv := strings.Fields(keys["ExecStart"][0])
	if filepath.Base(argv[0]) != "dss-sync" {
		t.Fatalf("ExecStart runs %s", argv[0])
	}
	args := slices.Clone(argv[1:])
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			if _, err := os.Stat(args[i+1]); err != nil {
				args[i+1] = filepath.Join(deployDir, "dss-sync.yaml")
			}
		}
	}
	environ := map[string]string{}
	for _, e := range keys["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			environ[k] = v
		}
	}
	cfg := deployServe(t, "ExecStart", args, environ)
	if want := "/var/lib/" + strings.Join(keys["StateDirectory"], ""); cfg.DataDir != want {
		t.Errorf("data dir %s, but the unit may only write its StateDirectory %s", cfg.DataDir, want)
	}
	timeout := strings.Join(keys["TimeoutStopSec"], "")
	stop, err := time.ParseDuration(timeout)
	if n, err2 := strconv.Atoi(timeout); err2 == nil { // a bare number is seconds
		stop, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || stop < 40*time.Second {
		t.Errorf("TimeoutStopSec=%s: the graceful stop takes up to 30 s + 10 s", keys["TimeoutStopSec"])
	}
}
