package e2e_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/fakeaws"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// answer is one raw call through Envoy: status, the JSON error code and the
// Retry-After header.
type answer struct {
	status     int
	code       string
	retryAfter string
	took       time.Duration
}

// converseRaw sends one Converse request through Envoy's public listener
// with a bearer token (and x-account-id when account is set).
func converseRaw(t *testing.T, st *stack.Stack, tok, account string) answer {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + tok}
	if account != "" {
		h["x-account-id"] = account
	}
	return converseWith(t, st, h)
}

// converseWith sends one Converse request through Envoy's public listener
// with the given request headers.
func converseWith(t *testing.T, st *stack.Stack, headers map[string]string) answer {
	t.Helper()
	hc, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	hc.Timeout = 30 * time.Second
	body := `{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}`
	req, err := http.NewRequest(http.MethodPost, st.EnvoyURL+"/model/"+url.PathEscape(stack.DemoModel)+"/converse", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("converse: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil {
		a.code = e.Error
	}
	if a.code == "" && resp.StatusCode != http.StatusOK {
		a.code = strings.TrimSpace(string(b))
	}
	return a
}

// want200 asserts a call succeeded.
func want200(t *testing.T, what string, a answer) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: status %d (%s), want 200", what, a.status, a.code)
	}
}

// metricSum adds up the samples of a metric on tenantgate's /metrics whose
// line contains every one of labels.
func metricSum(t *testing.T, st *stack.Stack, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + st.TenantgateHTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// readyz returns tenantgate's /readyz status.
func readyz(t *testing.T, st *stack.Stack) int {
	t.Helper()
	resp, err := http.Get("http://" + st.TenantgateHTTP + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventually retries f every 100ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tcpProxy forwards loopback connections to a target; Down closes every
// connection and refuses new ones (the port is closed) until Up.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.Down)
	return p
}

func (p *tcpProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.l == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
	u.Close()
}

// Down closes the port and every proxied connection.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Up listens on the same port again.
func (p *tcpProxy) Up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy up again: %v", err)
	}
	p.serve(l)
}

// TestStoreOutageServesStale: PostgreSQL becomes unreachable (its port
// closed, connections cut) for longer than cache_ttl. Tenants seen before
// keep getting 200 through Envoy from stale cache entries, a tenant never
// seen gets 503 unavailable with Retry-After, tenantgate stays ready, and
// when PostgreSQL is back new tenants work again without a restart.
func TestStoreOutageServesStale(t *testing.T) {
	dbURL, bin := seededPostgres(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startTCPProxy(t, u.Host)
	u.Host = proxy.addr
	const ttl = time.Second
	st := startStack(t, stack.Options{DatabaseURL: u.String(), TenantgateBin: bin, Models: freeModels,
		Configure: func(cfg map[string]any) {
			store := cfg["store"].(map[string]any)
			store["cache_ttl"], store["negative_cache_ttl"], store["stale_if_error"] = ttl.String(), ttl.String(), "1m"
			store["query_timeout"] = "1s"
		}})
	alice, bob := token(t, st, stack.AliceUserID), token(t, st, stack.BobUserID)

	want200(t, "alice (personal) before the outage", converseRaw(t, st, alice, ""))
	want200(t, "alice for acme before the outage", converseRaw(t, st, alice, stack.AcmeAccountID))
	apiKey := map[string]string{"x-api-key": stack.AcmeAPIKeyPublic + ":" + stack.AcmeAPIKeySecret}
	want200(t, "acme API key before the outage", converseWith(t, st, apiKey))
	n := len(st.Records())

	proxy.Down()
	time.Sleep(2*ttl + 500*time.Millisecond) // every entry is past its TTL
	for i := range 3 {
		want200(t, "alice (personal) during the outage #"+strconv.Itoa(i), converseRaw(t, st, alice, ""))
		want200(t, "alice for acme during the outage #"+strconv.Itoa(i), converseRaw(t, st, alice, stack.AcmeAccountID))
		want200(t, "acme API key during the outage #"+strconv.Itoa(i), converseWith(t, st, apiKey))
	}
	a := converseRaw(t, st, bob, "")
	if a.status != http.StatusServiceUnavailable || a.code != "unavailable" || a.retryAfter == "" {
		t.Fatalf("never seen tenant during the outage: %+v, want 503 unavailable with Retry-After", a)
	}
	t.Logf("never seen tenant during the outage: %d %s Retry-After %s in %s", a.status, a.code, a.retryAfter, a.took)
	if s := readyz(t, st); s != http.StatusOK {
		t.Fatalf("/readyz during the outage = %d, want 200 (stale answers are served)", s)
	}
	if v := metricSum(t, st, "tenantgate_store_stale_answers_total"); v < 1 {
		t.Fatalf("tenantgate_store_stale_answers_total = %v, want > 0", v)
	}
	for _, r := range newRecords(st, n) {
		switch {
		case r.Region == stack.AcmeRegion:
			assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		default:
			assertSignedBy(t, r, stack.DefaultRegion, stack.PlatformPrincipal)
		}
	}

	proxy.Up(t)
	back := time.Now()
	eventually(t, 15*time.Second, "never seen tenant after PostgreSQL is back", func() error {
		if a := converseRaw(t, st, bob, ""); a.status != http.StatusOK {
			return errors.New(strconv.Itoa(a.status) + " " + a.code)
		}
		return nil
	})
	t.Logf("never seen tenant served %s after PostgreSQL is back", time.Since(back).Round(time.Millisecond))
	want200(t, "alice after the outage", converseRaw(t, st, alice, ""))
}

// initech is an enterprise tenant of its own role, used by the STS fault
// test as the tenant whose credentials were never assumed.
const (
	initechAccountID  = "a0000000-0000-4000-8000-000000000077"
	initechRoleARN    = "arn:aws:iam::444455556666:role/InitechBedrockAccess"
	initechExternalID = "initech-external-id-51d2"
	initechRegion     = "us-west-2"
	initechAssumed    = "arn:aws:sts::444455556666:assumed-role/InitechBedrockAccess/"
)

// TestSTSOutage: STS hangs, then answers 503. Acme, whose credentials are
// cached, keeps working; Initech, never assumed, gets 502
// tenant_credentials_unavailable within assume_role.timeout (then at once
// while the failure is cached); nothing reaches Bedrock unsigned or signed
// by another identity; Initech works once STS is back.
func TestSTSOutage(t *testing.T) {
	file := demoTenantsFile(t, `
  - id: `+initechAccountID+`
    name: Initech
    slug: initech
    personal: false
    primary_owner: `+stack.CarolUserID+`
    tier: tier_200_1000
    route:
      role_arn: `+initechRoleARN+`
      external_id: `+initechExternalID+`
      region: `+initechRegion+`
      enabled: true
`)
	const failureTTL = time.Second
	st := startStack(t, stack.Options{TenantsFile: file, Models: freeModels,
		ConfigureFakes: func(cfg *fakeaws.Config) {
			cfg.Roles = append(cfg.Roles, sts.Role{ARN: initechRoleARN, ExternalID: initechExternalID, MaxSessionDuration: time.Hour, TagSession: true, SetSourceIdentity: true})
		},
		Configure: func(cfg map[string]any) {
			// assume_role.timeout stays at its default (5s): the bound measured.
			cfg["extproc"].(map[string]any)["assume_role"] = map[string]any{"failure_ttl": failureTTL.String()}
		}})
	alice, carol := token(t, st, stack.AliceUserID), token(t, st, stack.CarolUserID)
	faults := st.Fakes.STS.Faults()
	t.Cleanup(func() { faults.SetLatency(0); _ = faults.SetMode(fault.ModeNone) })

	want200(t, "acme before the fault", converseRaw(t, st, alice, stack.AcmeAccountID))

	// STS hangs (every call waits a minute).
	faults.SetLatency(time.Minute)
	want200(t, "acme while STS hangs", converseRaw(t, st, alice, stack.AcmeAccountID))
	a := converseRaw(t, st, carol, initechAccountID)
	t.Logf("uncached tenant while STS hangs: %d %s in %s", a.status, a.code, a.took.Round(time.Millisecond))
	if a.status != http.StatusBadGateway || a.code != "tenant_credentials_unavailable" {
		t.Fatalf("uncached tenant while STS hangs: %+v, want 502 tenant_credentials_unavailable", a)
	}
	if a.took > 7*time.Second {
		t.Fatalf("uncached tenant waited %s while STS hangs, want about assume_role.timeout (5s)", a.took)
	}
	a = converseRaw(t, st, carol, initechAccountID)
	t.Logf("uncached tenant again (failure cached): %d %s in %s", a.status, a.code, a.took.Round(time.Millisecond))
	if a.status != http.StatusBadGateway || a.took > time.Second {
		t.Fatalf("uncached tenant within failure_ttl: %+v, want 502 at once", a)
	}

	// STS answers 503.
	faults.SetLatency(0)
	if err := faults.SetMode(fault.Mode503); err != nil {
		t.Fatal(err)
	}
	time.Sleep(failureTTL + 100*time.Millisecond)
	want200(t, "acme while STS answers 503", converseRaw(t, st, alice, stack.AcmeAccountID))
	a = converseRaw(t, st, carol, initechAccountID)
	t.Logf("uncached tenant while STS answers 503: %d %s in %s", a.status, a.code, a.took.Round(time.Millisecond))
	if a.status != http.StatusBadGateway || a.code != "tenant_credentials_unavailable" || a.took > 7*time.Second {
		t.Fatalf("uncached tenant while STS answers 503: %+v", a)
	}

	// Nothing went upstream for Initech, unsigned, or signed by anyone but
	// Acme's role.
	for _, r := range st.Records() {
		if r.AccessKeyID == "" || r.PrincipalARN == "" {
			t.Errorf("unsigned request reached Bedrock: %+v", r)
		}
		if !strings.HasPrefix(r.PrincipalARN, acmeAssumed) || r.Region != stack.AcmeRegion {
			t.Errorf("request signed by %s in %s during the STS fault, want only Acme's role in %s", r.PrincipalARN, r.Region, stack.AcmeRegion)
		}
	}

	// STS back: Initech works once its cached failure expires.
	_ = faults.SetMode(fault.ModeNone)
	eventually(t, 10*time.Second, "uncached tenant after STS is back", func() error {
		if a := converseRaw(t, st, carol, initechAccountID); a.status != http.StatusOK {
			return errors.New(strconv.Itoa(a.status) + " " + a.code)
		}
		return nil
	})
	recs := st.Records()
	assertSignedBy(t, recs[len(recs)-1], initechRegion, initechAssumed)
}

// TestJWKSOutage: the issuer's JWKS endpoint drops every connection. Tokens
// signed with the cached keys keep verifying; the issuer rotates its key
// meanwhile; once the endpoint is back, tokens of the new key verify
// without a restart, and those of the old key still do (it stays published).
func TestJWKSOutage(t *testing.T) {
	st := startStack(t, stack.Options{Models: freeModels,
		Configure: func(cfg map[string]any) {
			is := cfg["auth"].(map[string]any)["issuers"].([]any)[0].(map[string]any)
			is["jwks_refresh"], is["unknown_kid_refetch"] = "1s", "500ms"
		}})
	// Every token distinct (its own exp), so that each is verified with the
	// keys rather than answered from the verified-token cache.
	var minted int
	fresh := func(mint func(string, time.Duration) (string, error)) string {
		t.Helper()
		minted++
		tok, err := mint(stack.AliceUserID, time.Hour+time.Duration(minted)*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	want200(t, "before the outage", converseRaw(t, st, fresh(st.Token), ""))

	if err := st.JWKSFaults.SetMode(fault.ModeDrop); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.JWKSFaults.SetMode(fault.ModeNone) })
	before := metricSum(t, st, "tenantgate_jwks_fetches_total", `result="error"`)
	eventually(t, 10*time.Second, "a failed JWKS refresh", func() error {
		if metricSum(t, st, "tenantgate_jwks_fetches_total", `result="error"`) <= before {
			return errors.New("no failed fetch yet")
		}
		return nil
	})
	for i := range 3 {
		want200(t, "fresh token of the cached key during the outage #"+strconv.Itoa(i), converseRaw(t, st, fresh(st.Token), ""))
		time.Sleep(300 * time.Millisecond)
	}
	if s := readyz(t, st); s != http.StatusOK {
		t.Fatalf("/readyz during the JWKS outage = %d, want 200 (keys cached)", s)
	}

	oldKey, err := st.RotateIssuerKey("stack-rsa-2")
	if err != nil {
		t.Fatal(err)
	}
	a := converseRaw(t, st, fresh(st.Token), "")
	t.Logf("token of the key rotated in during the outage: %d %s", a.status, a.code)
	if a.status == http.StatusOK {
		t.Fatal("token of an unpublished key accepted during the outage")
	}

	_ = st.JWKSFaults.SetMode(fault.ModeNone)
	eventually(t, 5*time.Second, "token of the new key after the JWKS is back", func() error {
		if a := converseRaw(t, st, fresh(st.Token), ""); a.status != http.StatusOK {
			return errors.New(strconv.Itoa(a.status) + " " + a.code)
		}
		return nil
	})
	want200(t, "token of the old key after rotation", converseRaw(t, st, fresh(oldKey), ""))
}
