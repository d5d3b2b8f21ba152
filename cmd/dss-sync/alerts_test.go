package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestAlertRulesUseRealMetrics keeps deploy/prometheus/alerts.yaml honest:
// every rule is well formed, and every dss_ metric it names is one a real
// site exports (two peered sites are scraped after some traffic).
func TestAlertRulesUseRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	metricRE := regexp.MustCompile(`\bdss_[a-z_]+\b`)
	used := map[string][]string{}
	alerts := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: alert, expr and a summary are needed", r)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, m := range metricRE.FindAllString(r.Expr, -1) {
				used[m] = append(used[m], r.Alert)
			}
		}
	}
	if alerts < 10 || len(used) < 10 {
		t.Fatalf("%d alerts on %d metrics: the file lost its rules", alerts, len(used))
	}

	tmp := t.TempDir()
	addrP := freeAddr(t)
	paris := startSite(t, filepath.Join(tmp, "paris"), "paris", "--nats-listen", addrP)
	lyon := startSite(t, filepath.Join(tmp, "lyon"), "lyon", "--peer", "nats://"+addrP, "--anti-entropy", "100ms")
	paris.call("POST", "/v1/projects", `{"id":"design","name":"Design"}`, nil)
	paris.write("p", 3, 0)
	converge(t, 20*time.Second, 3, paris, lyon)
	if got := call(t, lyon.m.HTTPURL(), "dss_aaaaaaaaaaaaaaaa_"+strings.Repeat("x", 43), "GET", "/v1/projects", "", nil); got != 401 {
		t.Fatalf("a bad key: %d", got)
	}
	waitFor(t, 5*time.Second, "an anti-entropy pass", func() (bool, string) {
		st := lyon.status()
		return st.Peers[0].AntiEntropy.LastRun != nil, ""
	})
	exported := scrape(t, paris) + scrape(t, lyon)
	for m, rules := range used {
		if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(exported) {
			t.Errorf("%s (used by %v) is not exported by a site", m, rules)
		}
	}
}
