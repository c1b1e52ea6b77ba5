package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100
// on every Linux architecture Go supports).
const clockTicks = 100

// metrics of one wrk run.
type metrics struct {
	rps, p50ms, p99ms float64
	requests          int64
	tgCPUus, envoyUS  float64 // CPU microseconds per request (tenantgate, Envoy)
}

// wrkScript is the Lua script of one body size: a POST with a JSON body of
// exactly the size and the caller's token, and a done() hook that prints one
// machine-readable line.
const wrkScript = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.headers["Host"] = "bench.local"
wrk.body = '{"inputText":"' .. string.rep("a", %d) .. '"}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("HOPRESULT requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d errors=%%d status=%%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
`

// jsonOverhead is the length of the JSON around the padding in wrkScript.
const jsonOverhead = len(`{"inputText":""}`)

func writeScript(dir string, body int, token string) (string, error) {
	pad := body - jsonOverhead
	if pad < 0 {
		pad = 0
	}
	p := filepath.Join(dir, fmt.Sprintf("post-%d.lua", body))
	if err := os.WriteFile(p, fmt.Appendf(nil, wrkScript, token, pad), 0o600); err != nil {
		return "", fmt.Errorf("write wrk script: %w", err)
	}
	return p, nil
}

// measure runs wrk once against variant v and samples the CPU time of
// tenantgate and Envoy around it.
func measure(ctx context.Context, v variant, path, script string, conns int, d time.Duration, tgPID, envoyPID int) (metrics, error) {
	threads := min(conns, runtime.NumCPU())
	url := fmt.Sprintf("http://127.0.0.1:%d%s", v.Port, path)
	tg0, err := cpuTicks(tgPID)
	if err != nil {
		return metrics{}, err
	}
	en0, err := cpuTicks(envoyPID)
	if err != nil {
		return metrics{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", max(int(d.Seconds()), 1)), "--timeout", "10s", "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return metrics{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	tg1, err := cpuTicks(tgPID)
	if err != nil {
		return metrics{}, err
	}
	en1, err := cpuTicks(envoyPID)
	if err != nil {
		return metrics{}, err
	}
	kv, err := parseResult(out)
	if err != nil {
		return metrics{}, err
	}
	if kv["errors"] != 0 || kv["status"] != 0 {
		return metrics{}, fmt.Errorf("wrk saw %d socket errors and %d non-2xx answers; output:\n%s", kv["errors"], kv["status"], out)
	}
	n := kv["requests"]
	if n == 0 {
		return metrics{}, fmt.Errorf("wrk completed no request:\n%s", out)
	}
	perReq := func(ticks int64) float64 { return float64(ticks) * 1e6 / clockTicks / float64(n) }
	return metrics{
		rps:      float64(n) / (float64(kv["duration_us"]) / 1e6),
		p50ms:    float64(kv["p50_us"]) / 1e3,
		p99ms:    float64(kv["p99_us"]) / 1e3,
		requests: n,
		tgCPUus:  perReq(tg1 - tg0),
		envoyUS:  perReq(en1 - en0),
	}, nil
}

func parseResult(out []byte) (map[string]int64, error) {
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "HOPRESULT ")
		if !ok {
			continue
		}
		kv := map[string]int64{}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wrk result %q: %w", f, err)
			}
			kv[k] = n
		}
		return kv, nil
	}
	return nil, fmt.Errorf("no HOPRESULT line in wrk output:\n%s", out)
}

// cpuTicks is utime+stime of a process in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields after it start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of pid %d: short stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	return u + s, nil
}

// sanity sends one request through every variant and checks who signed it,
// so that no row ever times a refusal.
func sanity(ctx context.Context, up *upstream, vs []variant, path, token string) error {
	for _, v := range vs {
		before := up.signed.Load()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", v.Port, path),
			strings.NewReader(`{"inputText":"hello"}`))
		if err != nil {
			return err
		}
		req.Host = "bench.local"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("sanity %s: %w", v.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sanity %s: %s %s", v.Name, resp.Status, body)
		}
		signed := up.signed.Load() > before
		if want := v.Name != "A"; signed != want {
			return fmt.Errorf("sanity %s: upstream saw signed=%v, want %v", v.Name, signed, want)
		}
		if host, _ := up.lastHost.Load().(string); v.Name != "A" && !strings.HasPrefix(host, "bedrock-runtime.") {
			return fmt.Errorf("sanity %s: upstream saw host %q, want bedrock-runtime.*", v.Name, host)
		}
	}
	return nil
}

// envoyProc is the bench Envoy.
type envoyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (e *envoyProc) pid() int { return e.cmd.Process.Pid }

func (e *envoyProc) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

func startEnvoy(ctx context.Context, bin, cfg, dir string, admin, concurrency int) (*envoyProc, error) {
	logf, err := os.Create(filepath.Join(dir, "envoy-bench.log"))
	if err != nil {
		return nil, fmt.Errorf("envoy log: %w", err)
	}
	cmd := exec.Command(bin, "-c", cfg, "--disable-hot-restart", "--concurrency", strconv.Itoa(concurrency),
		"-l", "warning", "--base-id-path", filepath.Join(dir, "base-id"), "--use-dynamic-base-id")
	cmd.Stdout = io.Discard // the access log: one line per request on stdout, as shipped
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start envoy: %w", err)
	}
	e := &envoyProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(e.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if body, err := stack.HTTPGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/clusters", admin)); err == nil &&
			strings.Contains(body, "health_flags::healthy") && tenantgateHealthy(body) {
			return e, nil
		}
		select {
		case <-e.done:
			log, _ := os.ReadFile(filepath.Join(dir, "envoy-bench.log"))
			return nil, fmt.Errorf("bench envoy exited:\n%s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, errors.New("bench envoy: tenantgate cluster never healthy")
		}
	}
}

func tenantgateHealthy(clusters string) bool {
	for _, l := range strings.Split(clusters, "\n") {
		if strings.HasPrefix(l, "tenantgate::") && strings.HasSuffix(l, "::health_flags::healthy") {
			return true
		}
	}
	return false
}

// profile takes a tenantgate CPU profile during one extra C run.
func profile(ctx context.Context, o options, portC int, path, script string) error {
	secs := max(int(o.duration.Seconds()), 1)
	type got struct {
		b   []byte
		err error
	}
	ch := make(chan got, 1)
	go func() {
		b, err := stack.HTTPGet(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", o.pprofAddr, secs))
		ch <- got{[]byte(b), err}
	}()
	c := slices.Max(o.conns)
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(min(c, runtime.NumCPU())), "-c", strconv.Itoa(c),
		"-d", fmt.Sprintf("%ds", secs+1), "-s", script, fmt.Sprintf("http://127.0.0.1:%d%s", portC, path))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("profile wrk: %w\n%s", err, out)
	}
	g := <-ch
	if g.err != nil {
		return fmt.Errorf("cpu profile: %w", g.err)
	}
	if err := os.WriteFile(o.cpuprofile, g.b, 0o600); err != nil {
		return fmt.Errorf("write cpu profile: %w", err)
	}
	fmt.Fprintf(os.Stderr, "tenantgate CPU profile (C, c=%d) written to %s\n", c, o.cpuprofile)
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func numCPU() int { return runtime.NumCPU() }

func goVersion() string { return runtime.Version() }

func envoyVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	s := string(out)
	if i := strings.Index(s, "version: "); i >= 0 {
		s = s[i+len("version: "):]
		if j := strings.IndexAny(s, "/ \n"); j >= 0 {
			s = s[j+1:]
			if k := strings.IndexAny(s, "/ \n"); k >= 0 {
				return s[:k]
			}
		}
	}
	return strings.TrimSpace(s)
}
