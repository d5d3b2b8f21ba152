package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.HTTPAddr != "127.0.0.1:8080" || c.NATSListen != "127.0.0.1:4222" || c.Site != "" || c.ClockOffset != 0 || c.MaxBody != 8<<20 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("http-addr: 127.0.0.1:1111\nsite: from-file\nlog-level: warn\npeer: [nats://a:4222, nats://b:4222]\nclock-offset: 90s\n"), 0o600)
	c, err := loadConfig([]string{"--config", file, "--http-addr", "127.0.0.1:3333"},
		env(map[string]string{"DSS_SYNC_HTTP_ADDR": "127.0.0.1:2222", "DSS_SYNC_SITE": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:3333" {
		t.Fatalf("flag did not win: %s", c.HTTPAddr)
	}
	if c.Site != "from-env" {
		t.Fatalf("env did not beat the file: %s", c.Site)
	}
	if c.LogLevel != "warn" || c.ClockOffset != 90*time.Second || len(c.Peers) != 2 {
		t.Fatalf("file values lost: %+v", c)
	}
	// The config file may come from the environment too.
	c, err = loadConfig(nil, env(map[string]string{"DSS_SYNC_CONFIG": file}))
	if err != nil || c.Site != "from-file" {
		t.Fatalf("DSS_SYNC_CONFIG: %+v %v", c, err)
	}
}

func TestConfigRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--http-addr", "nonsense"}, nil, "--http-addr"},
		{[]string{"--site", "Paris!"}, nil, "--site"},
		{nil, map[string]string{"DSS_SYNC_SITE": "UPPER"}, "DSS_SYNC_SITE"},
		{[]string{"--nats-listen", "127.0.0.1:99999"}, nil, "--nats-listen"},
		{[]string{"--peer", "http://x:1"}, nil, "--peer"},
		{[]string{"--clock-offset", "soon"}, nil, "--clock-offset"},
		{[]string{"--tls-cert", "c.pem"}, nil, "--tls-cert/--tls-key"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--max-body", "12"}, nil, "--max-body"},
		{[]string{"--data-dir", ""}, nil, "--data-dir"},
		{[]string{"--http-addr", "127.0.0.1:1", "--http-addr", "127.0.0.1:2"}, nil, "given 2 times"},
		{[]string{"--config", write("unknown.yaml", "http_port: 80\n")}, nil, `unknown setting "http_port"`},
		{[]string{"--config", write("list.yaml", "site: [a, b]\n")}, nil, "takes one value"},
		{[]string{"--config", write("bad.yaml", "site: [\n")}, nil, "invalid config file"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "--config"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"--peer-nkey", "UNOTAKEY"}, nil, "--peer-nkey"},
		{[]string{"--nats-creds", filepath.Join(dir, "missing.creds")}, nil, "--nats-creds"},
		{[]string{"--nats-tls-cert", write("c.pem", "x")}, nil, "--nats-tls-cert/--nats-tls-key"},
		{[]string{"--nats-creds", write("a.creds", "x"), "--nats-nkey", write("a.nk", "x")}, nil, "--nats-creds/--nats-nkey"},
		{[]string{"--anti-entropy", "1ms"}, nil, "--anti-entropy"},
		{[]string{"--stream-replicas", "3"}, nil, "--stream-replicas 3"},
		{[]string{"--stream-replicas", "9", "--nats-url", "nats://n:4222"}, nil, "--stream-replicas"},
		{[]string{"--rate-limit-ip", "fast"}, nil, "--rate-limit-ip"},
		{[]string{"--rate-limit-key", "10/d"}, nil, "--rate-limit-key"},
		{nil, map[string]string{"DSS_SYNC_RATE_LIMIT_AUTH_FAILURES": "1/s:0"}, "DSS_SYNC_RATE_LIMIT_AUTH_FAILURES"},
		{[]string{"--config", write("rate.yaml", "rate-limit-ip: 100\n")}, nil, "rate-limit-ip"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, nil, "--trusted-proxies"},
		{[]string{"--trusted-proxies", "proxy.local"}, nil, "--trusted-proxies"},
		{[]string{"--read-header-timeout", "0"}, nil, "--read-header-timeout"},
		{[]string{"--read-timeout", "-1s"}, nil, "--read-timeout"},
		{[]string{"--write-timeout", "forever"}, nil, "--write-timeout"},
		{[]string{"--idle-timeout", "10"}, nil, "--idle-timeout"},
		{[]string{"--read-header-timeout", "3m"}, nil, "--read-header-timeout 3m0s: longer than --read-timeout"},
		{[]string{"--import-queue", "0"}, nil, "--import-queue"},
	} {
		_, err := loadConfig(tc.args, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err=%v, want one naming %q", tc.args, tc.env, err, tc.want)
		}
		if err != nil && !strings.Contains(tc.want, "no-such-flag") && strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%v: error is not one line: %q", tc.args, err)
		}
	}
}

// TestSampleConfigParses keeps deploy/dss-sync.yaml honest: every key in it
// is a real setting with a valid value.
func TestSampleConfigParses(t *testing.T) {
	c, err := loadConfig([]string{"--config", "../../deploy/dss-sync.yaml"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/dss-sync" || c.Site != "paris" || c.MaxBody != 8<<20 {
		t.Fatalf("sample config read as %+v", c)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errb strings.Builder
	if code := run(t.Context(), nil, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if code := run(t.Context(), []string{"frobnicate"}, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	// An invalid setting is bad usage too, wherever it comes from.
	if code := run(t.Context(), []string{"serve", "--site", "BAD"}, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("bad setting: exit %d", code)
	}
	if code := run(t.Context(), []string{"serve"}, &out, &errb, env(map[string]string{"DSS_SYNC_CACHE_SIZE": "4"})); code != 2 {
		t.Fatalf("bad setting from the environment: exit %d", code)
	}
	if code := run(t.Context(), []string{"serve", "--nope"}, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	out.Reset()
	if code := run(t.Context(), []string{"version"}, &out, &errb, env(nil)); code != 0 || !strings.HasPrefix(out.String(), "dss-sync ") {
		t.Fatalf("version: exit %d %q", code, out.String())
	}
}
