package fakeaws

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	cfg, err := Load("testdata/fakeaws.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Platform.AccessKeyID != "AKIAPLATFORMEXAMPLE01" || len(cfg.Roles) != 2 || cfg.Roles[0].ExternalID != "acme-external-id-7f3c" || !cfg.Roles[0].TagSession || !cfg.Roles[0].SetSourceIdentity ||
		cfg.Roles[1].ARN != PlatformInvokerRoleARN || !cfg.Roles[1].TagSession ||
		cfg.Roles[0].MaxSessionDuration != time.Hour || cfg.StreamDelay != 50*time.Millisecond || len(cfg.Regions) != 4 {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := New(cfg, nil); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no platform key", func(c *Config) { c.Platform.AccessKeyID = "" }, false},
		{"no regions", func(c *Config) { c.Regions = nil }, false},
		{"cert without key", func(c *Config) { c.BedrockTLSCert = "x" }, false},
		{"no admin", func(c *Config) { c.AdminListen = "" }, false},
	}
	for _, c := range cases {
		cfg := Default()
		c.mut(&cfg)
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.name, err)
		}
	}
}

func TestAdminHandler(t *testing.T) {
	f, err := New(Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := f.AdminHandler()
	do := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}
	cases := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/healthz", "", 200, "ok"},
		{"GET", "/_fake/records", "", 200, "[]"},
		{"DELETE", "/_fake/records", "", 204, ""},
		{"GET", "/_fake/sts/calls", "", 200, `"calls":[]`},
		{"DELETE", "/_fake/sts/calls", "", 204, ""},
		{"POST", "/_fake/sts/faults", `{"mode":"drop","latency_ms":10}`, 200, `"mode":"drop"`},
		{"POST", "/_fake/bedrock/faults", `{"fail_next":2}`, 200, `"fail_next":2`},
		{"POST", "/_fake/bedrock/throttle", `{"n":1}`, 204, ""},
		{"POST", "/_fake/bedrock/throttle", `{`, 400, ""},
	}
	for _, c := range cases {
		rec := do(c.method, c.path, c.body)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.contains) {
			t.Fatalf("%s %s: %d %q", c.method, c.path, rec.Code, rec.Body)
		}
	}
	if st := f.STS.Faults().State(); st.Mode != "drop" || st.LatencyMS != 10 {
		t.Fatalf("sts faults %+v", st)
	}
	if st := f.Bedrock.Faults().State(); st.FailNext != 2 {
		t.Fatalf("bedrock faults %+v", st)
	}
	var v map[string]any
	if err := json.Unmarshal(do("GET", "/_fake/sts/calls", "").Body.Bytes(), &v); err != nil || v["counts"] == nil {
		t.Fatalf("calls json %v %v", v, err)
	}
	_ = http.StatusOK
}
