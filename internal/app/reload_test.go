package app

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

const (
	haikuPath     = "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke"
	sonnetPath    = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke"
	otherIssuer   = "https://other.supabase.co/auth/v1"
	otherSecret   = "other-issuer-secret-0123456789abcdef012345"
	reloadBaseCfg = `
server:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  shutdown_grace: 5s
  shutdown_drain: 0s
  config_poll: %POLL%
store:
  demo: true
auth:
  issuers:
    - issuer: ` + testIssuer + `
`
)

// reloadFixture is an App started from a config file it can reload.
type reloadFixture struct {
	*running
	path string
	env  map[string]string
}

func startReloadable(t *testing.T, poll string, rest string, reloads <-chan struct{}) *reloadFixture {
	t.Helper()
	f := &reloadFixture{path: filepath.Join(t.TempDir(), "tenantgate.yaml"), env: map[string]string{config.EnvSupabaseJWTSecret: testSecret}}
	f.write(t, poll, rest)
	src := ConfigSource{Path: f.path, Parse: func(data []byte) (*config.Config, error) {
		return config.Parse(data, func(k string) string { return f.env[k] })
	}}
	cfg, err := config.Load(f.path, func(k string) string { return f.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f.running = startAppWith(t, cfg, Options{AWSConfig: staticAWS(), Source: src, Reloads: reloads})
	return f
}

func (f *reloadFixture) write(t *testing.T, poll, rest string) {
	t.Helper()
	y := strings.Replace(reloadBaseCfg, "%POLL%", poll, 1) + rest
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
}

func (f *reloadFixture) writeRaw(t *testing.T, y string) {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// check asks ext_authz whether the token may call path and returns the
// denial's HTTP status (200 when allowed).
func (f *reloadFixture) check(t *testing.T, token, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(f.conn).Check(ctx, checkRequest(path, map[string]string{"authorization": "Bearer " + token}))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus().GetCode() == int32(codes.OK) {
		return http.StatusOK
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

func tokenFor(t *testing.T, iss, secret, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": iss, "sub": sub, "aud": "authenticated", "role": "authenticated",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// loop keeps calling an allowed Check until stopped and counts failures.
type loop struct {
	ok, failed atomic.Int64
	stop       func()
}

func (f *reloadFixture) loop(t *testing.T, token string) *loop {
	l := &loop{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := authv3.NewAuthorizationClient(f.conn)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := client.Check(cctx, checkRequest(haikuPath, map[string]string{"authorization": "Bearer " + token}))
				ccancel()
				switch {
				case ctx.Err() != nil:
				case err != nil || resp.GetStatus().GetCode() != int32(codes.OK):
					l.failed.Add(1)
				default:
					l.ok.Add(1)
				}
			}
		}()
	}
	l.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(l.stop)
	return l
}

func (f *reloadFixture) metrics(t *testing.T) string {
	t.Helper()
	_, m := httpGet(t, "http://"+f.app.HTTPAddr().String()+"/metrics")
	return m
}

// TestReloadAppliesPlansAndIssuers: Reload swaps in new plans and issuers
// while calls continue without a failure; a broken file is refused with a
// clear log line and the configuration in force stays; a change to a
// setting that needs a restart keeps the running value and says so.
func TestReloadAppliesPlansAndIssuers(t *testing.T) {
	const haikuOnly = "plans:\n  models: {free: [\"anthropic.claude-3-haiku-*\"], tier_125_800: [\"*\"], tier_200_1000: [\"*\"]}\n"
	const everything = "plans:\n  models: {free: [\"*\"], tier_125_800: [\"*\"], tier_200_1000: [\"*\"]}\n"
	f := startReloadable(t, "0s", haikuOnly, nil)
	alice := userToken(t, testSecret, filestore.DemoAliceUserID)
	carolOther := tokenFor(t, otherIssuer, otherSecret, filestore.DemoCarolUserID)
	ctx := context.Background()

	if got := f.check(t, alice, sonnetPath); got != http.StatusForbidden {
		t.Fatalf("before reload: sonnet for free tier = %d, want 403", got)
	}
	if got := f.check(t, carolOther, haikuPath); got != http.StatusUnauthorized {
		t.Fatalf("before reload: token of an unconfigured issuer = %d, want 401", got)
	}
	l := f.loop(t, alice)
	time.Sleep(50 * time.Millisecond)

	// 1. A newly allowed model and a new issuer take effect.
	f.writeRaw(t, strings.Replace(reloadBaseCfg, "%POLL%", "0s", 1)+
		"    - issuer: "+otherIssuer+"\n      hs256_secret: "+otherSecret+"\n      hs256_secret_env: \"-\"\n"+everything)
	if err := f.app.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := f.check(t, alice, sonnetPath); got != http.StatusOK {
		t.Errorf("after reload: sonnet for free tier = %d, want 200", got)
	}
	if got := f.check(t, carolOther, haikuPath); got != http.StatusOK {
		t.Errorf("after reload: token of the new issuer = %d, want 200", got)
	}

	// 2. A broken file is refused; the configuration in force stays.
	f.writeRaw(t, strings.Replace(reloadBaseCfg, "%POLL%", "0s", 1)+"plans:\n  models: {free: [\"[\"]}\n")
	err := f.app.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "plans.models.free: bad glob") {
		t.Errorf("Reload of a broken file = %v, want the validation error", err)
	}
	f.writeRaw(t, "server: [not, a, map\n")
	if err := f.app.Reload(ctx); err == nil {
		t.Error("Reload of unparseable YAML succeeded")
	}
	if got := f.check(t, alice, sonnetPath); got != http.StatusOK {
		t.Errorf("after a refused reload: sonnet = %d, want 200 (old configuration in force)", got)
	}
	if got := f.check(t, carolOther, haikuPath); got != http.StatusOK {
		t.Errorf("after a refused reload: new issuer = %d, want 200", got)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"msg":"configuration reload refused; the previous configuration stays in force"`) ||
		!strings.Contains(logs, "bad glob") {
		t.Errorf("refusal not logged clearly:\n%s", logs)
	}

	// 3. A setting that needs a restart keeps its running value.
	f.writeRaw(t, strings.Replace(strings.Replace(reloadBaseCfg, "%POLL%", "0s", 1), "http_listen: 127.0.0.1:0", "http_listen: 127.0.0.1:1", 1)+
		"    - issuer: "+otherIssuer+"\n      hs256_secret: "+otherSecret+"\n      hs256_secret_env: \"-\"\n"+haikuOnly)
	if err := f.app.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := f.check(t, alice, sonnetPath); got != http.StatusForbidden {
		t.Errorf("plans not applied beside a restart-only change: sonnet = %d, want 403", got)
	}
	if g := f.app.live.Load(); g.cfg.Server.HTTPListen != "127.0.0.1:0" {
		t.Errorf("running http_listen changed to %q", g.cfg.Server.HTTPListen)
	}
	if !strings.Contains(f.logs.String(), `"msg":"configuration reload: setting changed but needs a restart; the running value stays","key":"server"`) {
		t.Errorf("restart-only change not logged")
	}

	l.stop()
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("concurrent calls during reloads: ok=%d failed=%d, want no failure", l.ok.Load(), l.failed.Load())
	}
	m := f.metrics(t)
	for _, want := range []string{
		`tenantgate_config_reloads_total{result="ok"} 2`,
		`tenantgate_config_reloads_total{result="error"} 2`,
		"tenantgate_config_loaded_timestamp_seconds ",
		`tenantgate_config_info{sha256="`,
		`tenantgate_extauthz_decisions_total{code="ok"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(f.logs.String(), otherSecret) || strings.Contains(m, otherSecret) {
		t.Error("a secret reached logs or metrics")
	}
}

// TestReloadOnSignalAndFileChange: a receive on Options.Reloads (SIGHUP)
// and, with server.config_poll, a changed file both reload; a broken file
// is refused once and not retried until it changes.
func TestReloadOnSignalAndFileChange(t *testing.T) {
	const haikuOnly = "plans:\n  models: {free: [\"anthropic.claude-3-haiku-*\"]}\n"
	const everything = "plans:\n  models: {free: [\"*\"]}\n"
	reloads := make(chan struct{}, 1)
	f := startReloadable(t, "0s", haikuOnly, reloads)
	alice := userToken(t, testSecret, filestore.DemoAliceUserID)
	waitStatus := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.check(t, alice, sonnetPath) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: sonnet never answered %d\n%s", what, want, f.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.write(t, "0s", everything)
	if got := f.check(t, alice, sonnetPath); got != http.StatusForbidden {
		t.Fatalf("applied without a reload: %d", got)
	}
	reloads <- struct{}{}
	waitStatus(http.StatusOK, "after the reload signal")
	// --demo's own API key default is not a change of auth.api_keys.
	if strings.Contains(f.logs.String(), "needs a restart") {
		t.Errorf("an unchanged file reported a setting needing a restart:\n%s", f.logs.String())
	}

	// Polling: the file's own config_poll does not apply until a restart,
	// so start a polling app.
	g := startReloadable(t, "50ms", haikuOnly, nil)
	g.write(t, "50ms", everything)
	deadline := time.Now().Add(5 * time.Second)
	for g.check(t, alice, sonnetPath) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("changed file not reloaded by polling\n%s", g.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.writeRaw(t, "server: [broken\n")
	time.Sleep(400 * time.Millisecond) // several polls
	if got := g.check(t, alice, sonnetPath); got != http.StatusOK {
		t.Errorf("broken file replaced the configuration in force: %d", got)
	}
	if n := strings.Count(g.logs.String(), "configuration reload refused"); n != 1 {
		t.Errorf("broken file refused %d times, want once until it changes", n)
	}
}
