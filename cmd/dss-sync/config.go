package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dss-sync/dss-sync/api"
	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"
)

// Config is the configuration of `dss-sync serve`. Every setting has a flag
// (--http-addr), an environment variable (DSS_SYNC_HTTP_ADDR) and a config
// file key (http-addr); precedence is flag > env > file > default.
type Config struct {
	DataDir     string
	HTTPAddr    string
	Site        string
	NATSListen  string
	NATSURL     string
	Peers       []string
	PeerNkeys   []string
	NATSCreds   string
	NATSNkey    string
	NATSTLSCert string
	NATSTLSKey  string
	NATSTLSCA   string
	AntiEntropy time.Duration
	Replicas    int
	ClockOffset time.Duration
	TLSCert     string
	TLSKey      string
	LogLevel    string
	LogFormat   string
	MaxBody     int64
	CacheMiB    int64
	MemoryMiB   int64
	SkewTol     time.Duration
	ImportBytes int64
	ImportToks  int
	TrustKeys   []string
	// Limits: request rates, trusted proxies, HTTP timeouts, import queue.
	RateIP, RateKey, RateAuth api.Rate
	TrustedProxies            []netip.Prefix
	ReadHeaderTimeout         time.Duration
	ReadTimeout               time.Duration
	WriteTimeout              time.Duration
	IdleTimeout               time.Duration
	ImportQueue               int
}

// setting is one configuration setting: its name (the flag and file key),
// default, help, and how a string from any source sets it.
type setting struct {
	name, def, usage string
	repeat           bool
	set              func(c *Config, v string) error
}

func (s setting) env() string {
	return "DSS_SYNC_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

var siteRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// settings lists every serve setting, in the order `serve -h` shows them.
var settings = []setting{
	{name: "data-dir", def: "./data", usage: "directory for Pebble, JetStream and keys (created 0700)",
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			c.DataDir = v
			return nil
		}},
	{name: "http-addr", def: "127.0.0.1:8080", usage: "REST API listen address",
		set: func(c *Config, v string) error { c.HTTPAddr = v; return checkHostPort(v, false) }},
	{name: "site", usage: "this site's id, [a-z0-9-]{1,32} (default: generated once, kept in the data dir)",
		set: func(c *Config, v string) error {
			if !siteRE.MatchString(v) {
				return errors.New("must match [a-z0-9-]{1,32}")
			}
			c.Site = v
			return nil
		}},
	{name: "nats-listen", def: "127.0.0.1:4222", usage: "embedded NATS client listener (port -1: random)",
		set: func(c *Config, v string) error { c.NATSListen = v; return checkHostPort(v, true) }},
	{name: "nats-url", usage: "use an existing NATS JetStream deployment instead of the embedded server",
		set: func(c *Config, v string) error { c.NATSURL = v; return checkNATSURLs(v) }},
	{name: "peer", repeat: true, usage: "another site's NATS URL (repeatable)",
		set: func(c *Config, v string) error {
			if err := checkNATSURLs(v); err != nil {
				return err
			}
			c.Peers = append(c.Peers, v)
			return nil
		}},
	{name: "peer-nkey", repeat: true, usage: "public nkey (U...) of a site allowed to pull from this one (repeatable); with any, the embedded NATS server requires an nkey of every client, and peers may only read",
		set: func(c *Config, v string) error {
			if !nkeys.IsValidPublicUserKey(v) {
				return errors.New("must be a public user nkey (56 characters starting with U), as `dss-sync nkey` prints")
			}
			c.PeerNkeys = append(c.PeerNkeys, v)
			return nil
		}},
	{name: "nats-creds", usage: "NATS credentials file (user JWT and nkey seed) for --nats-url and --peer connections",
		set: func(c *Config, v string) error { c.NATSCreds = v; return checkReadable(v) }},
	{name: "nats-nkey", usage: "nkey seed file for --nats-url and --peer connections (default with --peer-nkey: this site's own, <data-dir>/nats.nk)",
		set: func(c *Config, v string) error { c.NATSNkey = v; return checkReadable(v) }},
	{name: "nats-tls-cert", usage: "TLS certificate (PEM) of the embedded NATS server; with --nats-tls-key, every client connects over TLS",
		set: func(c *Config, v string) error { c.NATSTLSCert = v; return checkReadable(v) }},
	{name: "nats-tls-key", usage: "TLS private key (PEM) of the embedded NATS server",
		set: func(c *Config, v string) error { c.NATSTLSKey = v; return checkReadable(v) }},
	{name: "nats-tls-ca", usage: "CA certificates (PEM) that NATS servers this site connects to (--nats-url, --peer) must chain to",
		set: func(c *Config, v string) error { c.NATSTLSCA = v; return checkReadable(v) }},
	{name: "anti-entropy", def: "30s", usage: "how often each peer's version vectors are compared with this site's, to fetch what no stream delivered",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 10*time.Millisecond {
				return errors.New("must be a Go duration of at least 10ms, such as 30s")
			}
			c.AntiEntropy = d
			return nil
		}},
	{name: "stream-replicas", def: "1", usage: "replicas of this site's JetStream streams on a --nats-url cluster (1 to 5; the embedded server has one node)",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 5 {
				return errors.New("must be 1 to 5")
			}
			c.Replicas = n
			return nil
		}},
	{name: "clock-offset", def: "0", usage: "shift this site's wall clock by a Go duration, for skew drills",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("must be a Go duration such as 90s or -2h")
			}
			c.ClockOffset = d
			return nil
		}},
	{name: "skew-tolerance", def: "5s", usage: "how far ahead of this site's clock a received event may be before it is flagged",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("must be a positive Go duration such as 5s")
			}
			c.SkewTol = d
			return nil
		}},
	{name: "import-max-bytes", def: "1073741824", usage: "largest import (archive or DTCG file), in bytes",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return errors.New("must be a byte count of at least 1024")
			}
			c.ImportBytes = n
			return nil
		}},
	{name: "import-max-tokens", def: "1000000", usage: "most tokens one import may hold",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return errors.New("must be a positive count")
			}
			c.ImportToks = n
			return nil
		}},
	{name: "trust-key", repeat: true, usage: "key id of a site whose signed archives to accept (repeatable; none: any valid signature)",
		set: func(c *Config, v string) error {
			if len(v) != 16 || strings.Trim(v, "0123456789abcdef") != "" {
				return errors.New("must be a key id: 16 hex digits")
			}
			c.TrustKeys = append(c.TrustKeys, v)
			return nil
		}},
	{name: "tls-cert", usage: "TLS certificate file (PEM); with --tls-key, serve HTTPS (TLS 1.3)",
		set: func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{name: "tls-key", usage: "TLS private key file (PEM)",
		set: func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{name: "log-level", def: "info", usage: "debug, info, warn or error",
		set: func(c *Config, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return errors.New("must be debug, info, warn or error")
		}},
	{name: "log-format", def: "json", usage: "json or text",
		set: func(c *Config, v string) error {
			if v != "json" && v != "text" {
				return errors.New("must be json or text")
			}
			c.LogFormat = v
			return nil
		}},
	{name: "cache-size", def: "256", usage: "memory for the store, in MiB: the Pebble block cache; memtables get a quarter of it (two may be live) and the value caches an eighth",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 8 || n > 1<<20 {
				return errors.New("must be a size in MiB of at least 8")
			}
			c.CacheMiB = n
			return nil
		}},
	{name: "memory-limit", def: "0", usage: "memory the whole process should stay within, in MiB (0: no limit): the Go heap is held to it less the store's memory (cache-size and memtables), collecting garbage more often as it nears",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 1<<30 {
				return errors.New("must be a size in MiB, or 0")
			}
			c.MemoryMiB = n
			return nil
		}},
	{name: "max-body", def: "8388608", usage: "largest JSON request body, in bytes",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return errors.New("must be a byte count of at least 1024")
			}
			c.MaxBody = n
			return nil
		}},
	{name: "rate-limit-ip", def: "100/s:200", usage: "requests per client address (IPv6: per /64), every route but /healthz and /readyz, as RATE/s|m|h:BURST, or off",
		set: func(c *Config, v string) (err error) { c.RateIP, err = api.ParseRate(v); return err }},
	{name: "rate-limit-key", def: "50/s:100", usage: "requests per API key, as RATE/s|m|h:BURST, or off",
		set: func(c *Config, v string) (err error) { c.RateKey, err = api.ParseRate(v); return err }},
	{name: "rate-limit-auth-failures", def: "1/s:10", usage: "failed authentications (401) per client address; past it, the address gets 429 before its key is checked; RATE/s|m|h:BURST, or off",
		set: func(c *Config, v string) (err error) { c.RateAuth, err = api.ParseRate(v); return err }},
	{name: "trusted-proxies", repeat: true, usage: "addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client (comma-separated or repeatable; none: the header is ignored)",
		set: func(c *Config, v string) error {
			for _, s := range strings.Split(v, ",") {
				s = strings.TrimSpace(s)
				p, err := netip.ParsePrefix(s)
				if err != nil {
					a, aerr := netip.ParseAddr(s)
					if aerr != nil {
						return fmt.Errorf("%q is not an address or CIDR such as 10.0.0.0/8", s)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}},
	{name: "read-header-timeout", def: "10s", usage: "time a client has to send a request's headers",
		set: func(c *Config, v string) (err error) { c.ReadHeaderTimeout, err = positiveDuration(v); return err }},
	{name: "read-timeout", def: "2m", usage: "time a client has to send a whole request, body included (an import's upload too)",
		set: func(c *Config, v string) (err error) { c.ReadTimeout, err = positiveDuration(v); return err }},
	{name: "write-timeout", def: "10m", usage: "time to answer a request, from the end of its headers (an export's download too; live event streams are exempt)",
		set: func(c *Config, v string) (err error) { c.WriteTimeout, err = positiveDuration(v); return err }},
	{name: "idle-timeout", def: "2m", usage: "how long a kept-alive connection may wait for its next request",
		set: func(c *Config, v string) (err error) { c.IdleTimeout, err = positiveDuration(v); return err }},
	{name: "import-queue", def: "4", usage: "most imports in progress at once (being received, checked, queued or running; they run one at a time); more get 429",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10_000 {
				return errors.New("must be a count from 1 to 10000")
			}
			c.ImportQueue = n
			return nil
		}},
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive Go duration such as 30s or 2m")
	}
	return d, nil
}

func checkHostPort(v string, allowRandom bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port")
	}
	if host != "" && net.ParseIP(host) == nil && !regexp.MustCompile(`^[A-Za-z0-9.-]+$`).MatchString(host) {
		return fmt.Errorf("bad host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n > 65535 || n < 0 && !(allowRandom && n == -1) {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// checkReadable checks that a file named by a setting can be read now,
// so that a typo fails at start rather than at the first connection.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// checkNATSURLs checks a comma-separated list of NATS URLs.
func checkNATSURLs(v string) error {
	for _, s := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a URL such as nats://host:4222", s)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: scheme must be nats, tls, ws or wss", s)
		}
	}
	return nil
}

// loadConfig builds the configuration from defaults, the config file
// (--config or DSS_SYNC_CONFIG), the environment and the flags, in that
// order, so each later source wins. The error names the setting and where
// its value came from, in one line.
func loadConfig(args []string, getenv func(string) string) (*Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	configFile := fs.String("config", getenv("DSS_SYNC_CONFIG"), "YAML config file (env DSS_SYNC_CONFIG)")
	given := map[string][]string{}
	for _, s := range settings {
		s := s
		fs.Func(s.name, fmt.Sprintf("%s (env %s)", s.usage, s.env()), func(v string) error {
			given[s.name] = append(given[s.name], v)
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{fmt.Errorf("%w\n\nusage: dss-sync serve [flags]\n%s", err, flagHelp(fs))}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("serve takes no arguments, got %q", fs.Args())}
	}
	fromFile := map[string][]string{}
	if *configFile != "" {
		var err error
		if fromFile, err = readConfigFile(*configFile); err != nil {
			return nil, usageError{err}
		}
	}
	c := &Config{}
	for _, s := range settings {
		values, source := []string(nil), ""
		switch {
		case given[s.name] != nil:
			values, source = given[s.name], "--"+s.name
		case getenv(s.env()) != "":
			values, source = splitList(getenv(s.env()), s.repeat), s.env()
		case fromFile[s.name] != nil:
			values, source = fromFile[s.name], *configFile+": "+s.name
		case s.def != "":
			values, source = []string{s.def}, "default of "+s.name
		}
		if len(values) > 1 && !s.repeat {
			return nil, usageError{fmt.Errorf("invalid %s: given %d times", source, len(values))}
		}
		for _, v := range values {
			if err := s.set(c, v); err != nil {
				return nil, usageError{fmt.Errorf("invalid %s %q: %v", source, v, err)}
			}
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, usageError{errors.New("invalid --tls-cert/--tls-key: give both or neither")}
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return nil, usageError{errors.New("invalid --nats-tls-cert/--nats-tls-key: give both or neither")}
	}
	if c.Replicas > 1 && c.NATSURL == "" {
		return nil, usageError{fmt.Errorf("invalid --stream-replicas %d: replicas need a JetStream cluster (--nats-url); the embedded server is one node", c.Replicas)}
	}
	if c.NATSCreds != "" && c.NATSNkey != "" {
		return nil, usageError{errors.New("invalid --nats-creds/--nats-nkey: give one or the other")}
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		return nil, usageError{fmt.Errorf("invalid --read-header-timeout %s: longer than --read-timeout %s, which covers the headers too", c.ReadHeaderTimeout, c.ReadTimeout)}
	}
	if c.MemoryMiB > 0 && c.heapLimitMiB() < 64 {
		return nil, usageError{fmt.Errorf("invalid --memory-limit %d: the store alone takes about %d MiB with --cache-size %d, and the heap needs 64 more: raise the limit or lower the cache",
			c.MemoryMiB, c.storeMiB(), c.CacheMiB)}
	}
	return c, nil
}

func splitList(v string, repeat bool) []string {
	if !repeat {
		return []string{v}
	}
	var out []string
	for _, s := range strings.Split(v, " ") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// readConfigFile reads a YAML file of setting: value pairs (a list for
// repeatable settings). Unknown keys are an error; an empty value or list
// leaves the setting unset.
func readConfigFile(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("invalid --config: %v", err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("invalid config file %s: %v", path, err)
	}
	out := map[string][]string{}
	for key, node := range doc {
		var s *setting
		for i := range settings {
			if settings[i].name == key {
				s = &settings[i]
			}
		}
		if s == nil {
			return nil, fmt.Errorf("invalid config file %s: unknown setting %q", path, key)
		}
		switch node.Kind {
		case yaml.ScalarNode:
			if node.Value != "" { // empty means unset, as for the environment
				out[key] = []string{node.Value}
			}
		case yaml.SequenceNode:
			if !s.repeat {
				return nil, fmt.Errorf("invalid config file %s: %s takes one value, not a list", path, key)
			}
			for _, n := range node.Content {
				if n.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("invalid config file %s: %s: list items must be strings", path, key)
				}
				out[key] = append(out[key], n.Value)
			}
		default:
			return nil, fmt.Errorf("invalid config file %s: %s must be a value", path, key)
		}
	}
	return out, nil
}

func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		for _, s := range settings {
			if s.name == f.Name {
				def = s.def
			}
		}
		fmt.Fprintf(&b, "  --%-14s %s", f.Name, f.Usage)
		if def != "" {
			fmt.Fprintf(&b, " (default %s)", def)
		}
		b.WriteString("\n")
	})
	return b.String()
}

// usageError marks a bad invocation: exit status 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// memtableMiB is the size of one Pebble memtable for the configured cache.
func (c *Config) memtableMiB() int64 { return max(4, c.CacheMiB/4) }

// storeMiB is the store's memory outside the Go heap: the block cache and
// two memtables.
func (c *Config) storeMiB() int64 { return c.CacheMiB + 2*c.memtableMiB() }

// heapLimitMiB is the Go heap's share of --memory-limit.
func (c *Config) heapLimitMiB() int64 { return c.MemoryMiB - c.storeMiB() }
