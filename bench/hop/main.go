// Command hop measures the cost of the tenant hop side by side through the
// real Envoy: four plain-HTTP listeners of one Envoy built from the shipped
// envoy/envoy.yaml,
//
//	A: Envoy, no filters (only the listener rate limit, opened wide)
//	B: Envoy's built-in aws_request_signing, static credentials
//	C: tenantgate ext_authz + ext_proc (the shipped configuration)
//	D: tenantgate ext_authz + the built-in signer
//
// all forwarding to one loopback upstream that discards the body, loaded by
// wrk (POST bodies from a Lua script) in interleaved rounds: every round
// runs every cell for every variant, in an order that rotates per round,
// and the tables show the median of the rounds. It also measures
// tenantgate's (and Envoy's) CPU per request from /proc and, with ghz, the
// ext_authz Check alone against a no-op Check server.
//
//	go run ./bench/hop              # full run (about 12 minutes)
//	go run ./bench/hop -quick       # 1 KiB and 1 MiB, c=1/64, 2s cells
//	go run ./bench/hop -link unix   # Envoy -> tenantgate over a Unix socket
//
// Benchmarks are scripts: nothing here asserts a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

type options struct {
	quick      bool
	rounds     int
	duration   time.Duration
	bodies     []int
	conns      []int
	link       stack.Link
	variants   string
	ghz        bool
	cpuprofile string
	pprofAddr  string
	envoyConc  int
}

func main() {
	var o options
	var bodies, conns, link string
	flag.BoolVar(&o.quick, "quick", false, "quick mode: 1 KiB and 1 MiB bodies, c=1 and 64, 2s cells, ghz at 2s")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (the tables show medians)")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "duration of one wrk run")
	flag.StringVar(&bodies, "bodies", "1024,65536,1048576", "request body sizes in bytes")
	flag.StringVar(&conns, "c", "1,16,64", "wrk connections")
	flag.StringVar(&link, "link", string(stack.LinkMTLS), "Envoy -> tenantgate link: mtls (shipped), plaintext or unix")
	flag.StringVar(&o.variants, "variants", "ABCD", "variants to run")
	flag.BoolVar(&o.ghz, "ghz", true, "also run the ext_authz Check group with ghz")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a tenantgate CPU profile taken during an extra C run (first body, largest c)")
	flag.IntVar(&o.envoyConc, "envoy-concurrency", 2, "Envoy worker threads")
	flag.Parse()
	if o.quick {
		if !flagSet("d") {
			o.duration = 2 * time.Second
		}
		if !flagSet("bodies") {
			bodies = "1024,1048576"
		}
		if !flagSet("c") {
			conns = "1,64"
		}
	}
	var err error
	if o.bodies, err = ints(bodies); err != nil {
		fatal(err)
	}
	if o.conns, err = ints(conns); err != nil {
		fatal(err)
	}
	o.link = stack.Link(link)
	if o.cpuprofile != "" {
		port, err := freePort()
		if err != nil {
			fatal(err)
		}
		o.pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fatal(err)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/hop:", err)
	os.Exit(1)
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// upstream is the loopback HTTP server every variant forwards to: it reads
// and discards the body and answers 200 with a small JSON body. It counts
// requests and signed requests (for the sanity checks).
type upstream struct {
	requests, signed atomic.Int64
	lastHost         atomic.Value
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	u.requests.Add(1)
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
		u.signed.Add(1)
	}
	u.lastHost.Store(r.Host)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"output":"ok"}`))
}

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found (apt-get install wrk, or make bootstrap): %w", err)
	}
	envoyBin, err := stack.FindEnvoy(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tenantgate-hop-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	loadStart := loadavg()

	st, err := stack.Start(ctx, stack.Options{
		EnvoyBin:           envoyBin,
		TenantgateLink:     o.link,
		TenantgateLogLevel: "info",
		TenantgatePprof:    o.pprofAddr,
		Logger:             slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("start stack: %w", err)
	}
	defer func() { _ = st.Stop() }()

	up := &upstream{}
	upL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("upstream listen: %w", err)
	}
	upSrv := &http.Server{Handler: up, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = upSrv.Serve(upL) }()
	defer upSrv.Close()

	var ports benchPorts
	for _, p := range []*int{&ports.Admin, &ports.A, &ports.B, &ports.C, &ports.D} {
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	ports.Upstream = upL.Addr().(*net.TCPAddr).Port
	ports.TenantgateGRPC, ports.Link, ports.Certs = st.TenantgateGRPC, st.TenantgateLink, st.Certs
	cfg, err := benchBootstrap(ports)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "envoy-bench.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return fmt.Errorf("write envoy config: %w", err)
	}
	env, err := startEnvoy(ctx, envoyBin, cfgPath, dir, ports.Admin, o.envoyConc)
	if err != nil {
		return err
	}
	defer env.stop()

	token, err := st.Token(stack.AliceUserID, 6*time.Hour)
	if err != nil {
		return err
	}
	all := []variant{
		{"A", "Envoy, no filters", ports.A},
		{"B", "Envoy aws_request_signing (static credentials)", ports.B},
		{"C", "tenantgate ext_authz + ext_proc (shipped)", ports.C},
		{"D", "tenantgate ext_authz + built-in signer", ports.D},
	}
	var vs []variant
	for _, v := range all {
		if strings.Contains(o.variants, v.Name) {
			vs = append(vs, v)
		}
	}
	path := "/model/" + strings.ReplaceAll(stack.DemoModel, ":", "%3A") + "/invoke"
	if err := sanity(ctx, up, vs, path, token); err != nil {
		return err
	}
	scripts := map[int]string{}
	for _, n := range o.bodies {
		if scripts[n], err = writeScript(dir, n, token); err != nil {
			return err
		}
	}
	tgPID := st.TenantgatePID()
	res := newResults()
	start := time.Now()
	for r := 0; r < o.rounds; r++ {
		for _, body := range o.bodies {
			for _, c := range o.conns {
				for i := range vs {
					v := vs[(i+r)%len(vs)] // rotate the order per round
					m, err := measure(ctx, v, path, scripts[body], c, o.duration, tgPID, env.pid())
					if err != nil {
						return fmt.Errorf("%s body=%d c=%d: %w", v.Name, body, c, err)
					}
					res.add(cell{body, c}, v.Name, m)
					fmt.Fprintf(os.Stderr, "round %d %s %s c=%d: %.0f req/s p50 %.2f ms p99 %.2f ms tg %.1f us/req\n",
						r+1, v.Name, size(body), c, m.rps, m.p50ms, m.p99ms, m.tgCPUus)
				}
			}
		}
	}
	elapsed := time.Since(start)

	var ghzTable string
	if o.ghz {
		ghzTable, err = runGhz(ctx, o, st, token, path, dir)
		if err != nil {
			ghzTable = "ghz group not run: " + err.Error() + "\n"
		}
	}
	if o.cpuprofile != "" {
		if err := profile(ctx, o, ports.C, path, scripts[o.bodies[0]]); err != nil {
			return err
		}
	}
	loadEnd := loadavg()

	fmt.Printf("# The tenant hop, side by side\n\n")
	fmt.Printf("%s, %s, %d cores, %s; Envoy %s (--concurrency %d); Envoy -> tenantgate link: %s; "+
		"wrk %s cells, %d interleaved rounds (median shown), %s total. Load average before %s, after %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), numCPU(), goVersion(), envoyVersion(ctx, envoyBin),
		o.envoyConc, linkDesc(st.TenantgateLink), o.duration, o.rounds, elapsed.Round(time.Second), loadStart, loadEnd)
	for _, v := range vs {
		fmt.Printf("- %s: %s\n", v.Name, v.Desc)
	}
	fmt.Println()
	fmt.Print(res.table(vs, o.bodies, o.conns))
	if ghzTable != "" {
		fmt.Printf("\n## ext_authz Check alone (ghz)\n\n%s", ghzTable)
	}
	return nil
}

func linkDesc(l stack.Link) string {
	switch l {
	case stack.LinkMTLS:
		return "mutual TLS over loopback TCP (as shipped)"
	case stack.LinkUnix:
		return "plaintext gRPC over a Unix socket"
	default:
		return "plaintext gRPC over loopback TCP"
	}
}

func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portOf(hostport string) (int, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", hostport, err)
	}
	return strconv.Atoi(p)
}

func cutPrefix(s, p string) (string, bool) { return strings.CutPrefix(s, p) }
