// Command dss-sync runs and operates dss-sync sites. main only wires: each
// subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	stop := profile(os.Getenv)
	code := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// profile writes a CPU profile to $DSS_SYNC_CPUPROFILE and a heap profile to
// $DSS_SYNC_MEMPROFILE when they are set: a debugging aid for operators and
// for the benchmarks, which run subcommands as processes.
func profile(getenv func(string) string) (stop func()) {
	var cpu *os.File
	if path := getenv("DSS_SYNC_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if path := getenv("DSS_SYNC_MEMPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}

const usage = `usage: dss-sync <command> [arguments]

commands:
  serve      run a site (dss-sync serve -h for its settings)
  export     export PROJECT -o FILE [--format dss|dtcg] [--no-history]
  import     import FILE --project P [--strategy replace|merge] [--dry-run]
  analyze    analyze FILE: check an archive or DTCG file offline (exit 1 if invalid)
  rebuild    rebuild a stopped site's projections from its event log
  audit      audit export PROJECT -o FILE | audit verify FILE
  keys       keys create|list|rotate|revoke|log: API keys and the security log (dss-sync keys for more)
  backup     backup -o FILE: a consistent backup of a running site, checked before it is kept
  restore    restore FILE --data-dir DIR: unpack a checked backup into an empty data dir
  nkey       print this site's public NATS nkey, for the other sites' --peer-nkey
  version    print the version, commit and Go version
`

// run runs one command and returns the exit status: 0 success, 1 the
// operation failed, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr, getenv)
	case "export":
		err = runExport(ctx, args[1:], stdout, stderr, getenv)
	case "import":
		err = runImport(ctx, args[1:], stdout, stderr, getenv)
	case "analyze":
		err = runAnalyze(args[1:], stdout)
	case "audit":
		err = runAudit(ctx, args[1:], stdout, stderr, getenv)
	case "rebuild":
		err = runRebuild(ctx, args[1:], stdout, stderr)
	case "keys":
		err = runKeys(ctx, args[1:], stdout, stderr, getenv)
	case "nkey":
		err = runNkey(args[1:], stdout)
	case "backup":
		err = runBackup(ctx, args[1:], stdout, stderr, getenv)
	case "restore":
		err = runRestore(args[1:], stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "dss-sync %s (commit %s, %s)\n", version, commit, runtime.Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "dss-sync: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, err.Error())
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "dss-sync: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "dss-sync: %v\n", err)
		return 1
	}
}
