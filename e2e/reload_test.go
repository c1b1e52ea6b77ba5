package e2e_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// TestConfigReloadSIGHUP runs the tenantgate binary behind the shipped
// Envoy: a plan change (a model newly allowed for the free tier) takes
// effect after SIGHUP while a request loop sees no failure, and a broken
// file sent with SIGHUP is refused with a clear log line while the
// configuration in force (and the process) stays.
func TestConfigReloadSIGHUP(t *testing.T) {
	models := map[string][]string{"free": {stack.DemoModel}, "tier_125_800": {"*"}, "tier_200_1000": {"*"}}
	st := startStack(t, stack.Options{Models: models})
	callers := replicaCallers(t, st)
	bobNew := callers[0] // Bob asks for platformModel, not yet allowed
	bobOld := loadCaller{token: bobNew.token, model: stack.DemoModel}
	client, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	if status, body, err := converse(client, st, bobNew); err != nil || status != http.StatusForbidden || !strings.Contains(string(body), "model_not_allowed") {
		t.Fatalf("before the reload: %d %s %v, want 403 model_not_allowed", status, body, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res loadResult
	lctx, stop := context.WithCancel(ctx)
	wait := runLoad(lctx, t, st, 4, &res, []loadCaller{bobOld, callers[1]})
	defer func() { stop(); wait() }()
	time.Sleep(300 * time.Millisecond)

	// 1. The free tier may now call platformModel.
	if err := st.UpdateTenantgateConfig(func(cfg map[string]any) {
		models["free"] = []string{stack.DemoModel, platformModel}
		cfg["plans"] = map[string]any{"models": models}
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.SignalReplica(0, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for {
		status, body, err := converse(client, st, bobNew)
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("plan change not in force 10s after SIGHUP: %d %s %v", status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("plan change in force %v after SIGHUP", time.Since(began).Round(time.Millisecond))

	// 2. A broken file is refused; the process and the new plans stay.
	if err := os.WriteFile(st.ReplicaConfig(0), []byte("plans: {models: {free: ['[']}}\nserver: [broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.SignalReplica(0, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(st.Dir + "/tenantgate.log")
		if strings.Contains(string(log), "configuration reload refused; the previous configuration stays in force") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("broken configuration not refused in the log")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if exited, err := st.ReplicaExited(0); exited {
		t.Fatalf("tenantgate exited after SIGHUP with a broken file: %v", err)
	}
	if status, body, err := converse(client, st, bobNew); err != nil || status != http.StatusOK {
		t.Errorf("after the refused reload: %d %s %v, want the reloaded plans in force", status, body, err)
	}

	time.Sleep(300 * time.Millisecond)
	stop()
	wait()
	t.Logf("request loop during both reloads: %s", &res)
	if res.failed.Load() != 0 || res.ok.Load() == 0 {
		t.Errorf("requests failed during the reloads: %s", &res)
	}
	resp, err := http.Get("http://" + st.TenantgateHTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m strings.Builder
	_, _ = io.Copy(&m, resp.Body)
	// The file is also polled (server.config_poll): a poll may have seen
	// either change before the signal did.
	for _, want := range []string{`tenantgate_config_reloads_total{result="ok"} 1\n`, `tenantgate_config_reloads_total{result="error"} [12]\n`} {
		if !regexp.MustCompile(want).MatchString(m.String()) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
