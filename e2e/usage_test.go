package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// usagePrices is the credit price table of the metering test (credits per
// million tokens).
var usagePrices = map[string]map[string]float64{
	stack.DemoModel: {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
}

// usageRow is one tenantgate.usage_records row.
type usageRow struct {
	RequestID, Account, Model, Resolved, Op, Region, Kind, Tier, User string
	Status                                                            int
	Complete, Final                                                   bool
	In, Out, CacheRead, CacheWrite                                    int64
	Cost                                                              *float64
	TTFB, Latency                                                     float64
}

// want is what the client saw AWS (the fake) report.
type want struct {
	op                             string
	in, out, cacheRead, cacheWrite int64
	complete, final                bool
}

// startMeteredStack migrates and seeds a database (demo tenants plus
// extra accounts), then starts the stack with usage metering and credits.
func startMeteredStack(t *testing.T, extraAccounts int) (*stack.Stack, string) {
	t.Helper()
	url, bin := seededPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE public.credit_accounts SET balance = 1000 WHERE account_id = $1`, stack.AcmeAccountID); err != nil {
		t.Fatal(err)
	}
	// Extra team accounts owned by Carol, each on the free tier (platform-signed) with a
	// balance (platform-signed).
	for i := range extraAccounts {
		id := extraAccount(i)
		if _, err := conn.Exec(ctx, `
			INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES ($1, $2, $3, $3, false);
			`, id, stack.CarolUserID, fmt.Sprintf("tenant-%02d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES ($1, $2, 'owner')`, stack.CarolUserID, id); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO public.credit_accounts (account_id, tier, balance) VALUES ($1, 'free', 1000)`, id); err != nil {
			t.Fatal(err)
		}
	}
	usageCfg := map[string]any{
		"flush_interval": "100ms",
		"batch_size":     50,
		"credits":        map[string]any{"enabled": true, "prices": usagePrices},
	}
	st := startStack(t, stack.Options{DatabaseURL: url, TenantgateBin: bin, Models: freeModels, StreamDelay: 5 * time.Millisecond, Usage: usageCfg})
	return st, url
}

func extraAccount(i int) string { return fmt.Sprintf("b0000000-0000-4000-8000-%012d", i) }

// rows waits until tenantgate.usage_records holds n rows (or the deadline).
func rows(t *testing.T, url string, n int) []usageRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var got []usageRow
		qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer qcancel()
		r, err := conn.Query(qctx, `SELECT request_id, account_id, model, resolved_model, operation, region, identity_kind, tier, user_id,
			status, complete, final_usage, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost::float8, ttfb_ms, latency_ms
			FROM tenantgate.usage_records ORDER BY occurred_at`)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var u usageRow
			if err := r.Scan(&u.RequestID, &u.Account, &u.Model, &u.Resolved, &u.Op, &u.Region, &u.Kind, &u.Tier, &u.User,
				&u.Status, &u.Complete, &u.Final, &u.In, &u.Out, &u.CacheRead, &u.CacheWrite, &u.Cost, &u.TTFB, &u.Latency); err != nil {
				t.Fatal(err)
			}
			got = append(got, u)
		}
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		if len(got) >= n || ctx.Err() != nil {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape returns tenantgate's metric families.
func scrape(t *testing.T, st *stack.Stack) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + st.TenantgateHTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestUsageMetering: each runtime operation through Envoy (streams
// included, one cut mid-stream) yields one record carrying exactly the
// tokens the fake returned, the metrics add up to the same, and the credit
// debit equals the price table's sum.
func TestUsageMetering(t *testing.T) {
	st, url := startMeteredStack(t, 0)
	ctx := context.Background()
	alice := token(t, st, stack.AliceUserID)
	c := newCaller(t, st, callerOpts{token: alice, headers: map[string]string{"x-account-id": stack.AcmeAccountID}})
	model := aws.String(stack.DemoModel)
	var wants []want

	// Converse, with a cache point so that cache tokens are reported.
	conv, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: model, Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{
		&types.ContentBlockMemberText{Value: "A long shared context worth caching for the next calls."},
		&types.ContentBlockMemberCachePoint{Value: types.CachePointBlock{Type: types.CachePointTypeDefault}},
		&types.ContentBlockMemberText{Value: "Hello"},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	u := conv.Usage
	if u.CacheReadInputTokens == nil || *u.CacheReadInputTokens == 0 {
		t.Fatalf("fake reported no cache tokens: %+v", u)
	}
	wants = append(wants, want{op: "Converse", in: int64(*u.InputTokens), out: int64(*u.OutputTokens), cacheRead: int64(*u.CacheReadInputTokens), cacheWrite: int64(*u.CacheWriteInputTokens), complete: true, final: true})

	// ConverseStream: the metadata event.
	cs, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: model, Messages: userMessage("Hello stream")})
	if err != nil {
		t.Fatal(err)
	}
	var meta *types.TokenUsage
	for ev := range cs.GetStream().Events() {
		if m, ok := ev.(*types.ConverseStreamOutputMemberMetadata); ok {
			meta = m.Value.Usage
		}
	}
	cs.GetStream().Close()
	if err := cs.GetStream().Err(); err != nil || meta == nil {
		t.Fatalf("converse stream: %v, metadata %v", err, meta)
	}
	wants = append(wants, want{op: "ConverseStream", in: int64(*meta.InputTokens), out: int64(*meta.OutputTokens), complete: true, final: true})

	// InvokeModel: the body's usage equals the token-count headers.
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hello invoke"}]}`)
	inv, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: model, Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	var im struct {
		Usage struct {
			In  int64 `json:"input_tokens"`
			Out int64 `json:"output_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(inv.Body, &im); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{op: "InvokeModel", in: im.Usage.In, out: im.Usage.Out, complete: true, final: true})

	// InvokeModelWithResponseStream: the last chunk's invocation metrics.
	ims, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: model, Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	var metrics struct {
		M *struct {
			In  int64 `json:"inputTokenCount"`
			Out int64 `json:"outputTokenCount"`
		} `json:"amazon-bedrock-invocationMetrics"`
	}
	for ev := range ims.GetStream().Events() {
		_ = json.Unmarshal(ev.(*types.ResponseStreamMemberChunk).Value.Bytes, &metrics)
	}
	ims.GetStream().Close()
	if err := ims.GetStream().Err(); err != nil || metrics.M == nil {
		t.Fatalf("invoke stream: %v, metrics %v", err, metrics.M)
	}
	wants = append(wants, want{op: "InvokeModelWithResponseStream", in: metrics.M.In, out: metrics.M.Out, complete: true, final: true})

	// CountTokens.
	ct, err := c.CountTokens(ctx, &bedrockruntime.CountTokensInput{ModelId: model, Input: &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{Messages: userMessage("Count me")}}})
	if err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{op: "CountTokens", in: int64(*ct.InputTokens), complete: true, final: true})

	// An InvokeModelWithResponseStream cut after its first two chunks
	// (message_start with the input tokens, content_block_start): recorded
	// as incomplete with the tokens seen so far.
	st.Fakes.Bedrock.CutNextStream(2)
	cut, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: model, Body: body, ContentType: aws.String("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	var seenIn int64
	chunks := 0
	for ev := range cut.GetStream().Events() {
		chunks++
		var start struct {
			Message *struct {
				Usage struct {
					In int64 `json:"input_tokens"`
				} `json:"usage"`
			} `json:"message"`
		}
		if json.Unmarshal(ev.(*types.ResponseStreamMemberChunk).Value.Bytes, &start) == nil && start.Message != nil {
			seenIn = start.Message.Usage.In
		}
	}
	cut.GetStream().Close()
	if chunks != 2 || seenIn == 0 {
		t.Fatalf("cut stream: %d chunks, input tokens seen %d", chunks, seenIn)
	}
	wants = append(wants, want{op: "InvokeModelWithResponseStream", in: seenIn, complete: false, final: false})

	// A client-chosen x-request-id (the idempotency key) must not let two
	// requests share one record: Envoy replaces it.
	spoof := newCaller(t, st, callerOpts{token: alice, headers: map[string]string{"x-account-id": stack.AcmeAccountID, "x-request-id": "client-chosen-id"}})
	for range 2 {
		out, err := spoof.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: model, Messages: userMessage("Hello again")})
		if err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want{op: "Converse", in: int64(*out.Usage.InputTokens), out: int64(*out.Usage.OutputTokens), complete: true, final: true})
	}

	got := rows(t, url, len(wants))
	if len(got) != len(wants) {
		t.Fatalf("%d usage records, want %d: %+v", len(got), len(wants), got)
	}
	// The fake's own records name the model each request was sent with.
	fakeRecs := st.Records()
	var wantCost float64
	ids := map[string]bool{}
	for i, w := range wants {
		r := got[i]
		if r.Op != w.op || r.In != w.in || r.Out != w.out || r.CacheRead != w.cacheRead || r.CacheWrite != w.cacheWrite || r.Complete != w.complete || r.Final != w.final || r.Status != 200 {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
		if r.Account != stack.AcmeAccountID || r.Tier != stack.AcmeTier || r.User != stack.AliceUserID || r.Kind != "tenant" || r.Region != stack.AcmeRegion {
			t.Errorf("record %d identity = %+v", i, r)
		}
		if r.Model != stack.DemoModel || r.Resolved != fakeRecs[len(fakeRecs)-len(wants)+i].ModelID {
			t.Errorf("record %d model %q resolved %q, fake saw %q", i, r.Model, r.Resolved, fakeRecs[len(fakeRecs)-len(wants)+i].ModelID)
		}
		if r.RequestID == "" || r.RequestID == "client-chosen-id" || ids[r.RequestID] || r.Latency <= 0 || r.TTFB <= 0 || r.TTFB > r.Latency {
			t.Errorf("record %d request id %q ttfb %v latency %v", i, r.RequestID, r.TTFB, r.Latency)
		}
		ids[r.RequestID] = true
		p := usagePrices[stack.DemoModel]
		cost := (float64(w.in)*p["input"] + float64(w.out)*p["output"] + float64(w.cacheRead)*p["cache_read"] + float64(w.cacheWrite)*p["cache_write"]) / 1e6
		if r.Cost == nil || abs(*r.Cost-cost) > 1e-9 {
			t.Errorf("record %d cost %v, want %v", i, r.Cost, cost)
		}
		wantCost += cost
	}

	// The balance fell by exactly the price table's sum.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var balance float64
	if err := conn.QueryRow(ctx, `SELECT balance::float8 FROM public.credit_accounts WHERE account_id = $1`, stack.AcmeAccountID).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if abs((1000-balance)-wantCost) > 1e-9 {
		t.Errorf("debited %v, want %v", 1000-balance, wantCost)
	}

	// Metrics: the token histogram's sums per operation and token type
	// are the tokens the fake returned.
	sums := map[string]float64{}
	for _, m := range scrape(t, st)["tenantgate_gen_ai_client_token_usage"].GetMetric() {
		sums[label(m, "gen_ai_operation_name")+"/"+label(m, "gen_ai_token_type")] += m.GetHistogram().GetSampleSum()
	}
	wantSums := map[string]float64{}
	for _, w := range wants {
		wantSums[w.op+"/input"] += float64(w.in)
		if w.out > 0 || w.final {
			wantSums[w.op+"/output"] += float64(w.out)
		}
		if w.cacheRead > 0 {
			wantSums[w.op+"/cache_read"] += float64(w.cacheRead)
		}
		if w.cacheWrite > 0 {
			wantSums[w.op+"/cache_write"] += float64(w.cacheWrite)
		}
	}
	for k, v := range wantSums {
		if sums[k] != v {
			t.Errorf("metric sum %s = %v, want %v (all %v)", k, sums[k], v, sums)
		}
	}
	if len(sums) != len(wantSums) {
		t.Errorf("metric series %v, want %v", sums, wantSums)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestUsageConcurrentTenants: 50 tenants × 20 requests, 20 in flight at a
// time, with tenantgate restarted (SIGTERM, drain, start) half-way: every
// request that succeeded has exactly one record with its own request id and
// the account that made it, except those whose metering stream could not
// be opened during the restart, which Envoy let through unmetered and
// counted (usage ext_proc failure_mode_allowed): records + unmetered =
// 1,000, none invented, none duplicated. Requests refused while tenantgate
// was down never reached AWS; the client retries them.
func TestUsageConcurrentTenants(t *testing.T) {
	const tenants, perTenant, inFlight = 50, 20, 20
	st, url := startMeteredStack(t, tenants)
	carol := token(t, st, stack.CarolUserID)
	callers := make([]caller, tenants)
	for i := range callers {
		callers[i] = newCaller(t, st, callerOpts{token: carol, headers: map[string]string{"x-account-id": extraAccount(i)}})
	}
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	done, retried := 0, 0
	restart := make(chan struct{})
	restarted := make(chan error, 1)
	go func() {
		<-restart
		if err := st.StopTenantgate(); err != nil {
			restarted <- err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		restarted <- st.StartTenantgate(ctx)
	}()
	for i := range tenants {
		for range perTenant {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				deadline := time.Now().Add(90 * time.Second)
				for {
					_, err := callers[i].converse(context.Background(), stack.DemoModel)
					mu.Lock()
					if err == nil {
						done++
						if done == tenants*perTenant/2 {
							close(restart)
						}
						mu.Unlock()
						return
					}
					if time.Now().After(deadline) {
						failures = append(failures, err.Error())
						mu.Unlock()
						return
					}
					retried++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	if err := <-restarted; err != nil {
		t.Fatalf("restart tenantgate: %v", err)
	}
	if len(failures) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(failures), failures[0])
	}
	t.Logf("%d requests succeeded, %d attempts refused during the restart and retried", done, retried)
	// A request whose metering stream could not be opened while tenantgate
	// restarted went on unmetered (failure_mode_allow): Envoy counts it.
	unmetered := envoyCounter(t, st, "usage", "failure_mode_allowed")
	got := rows(t, url, tenants*perTenant-unmetered)
	t.Logf("%d records, %d requests unmetered during the restart (counted by Envoy)", len(got), unmetered)
	if len(got)+unmetered != tenants*perTenant || unmetered > inFlight {
		t.Fatalf("%d records + %d unmetered, want %d (at most %d unmetered)", len(got), unmetered, tenants*perTenant, inFlight)
	}
	perAccount := map[string]int{}
	ids := map[string]bool{}
	for _, r := range got {
		if ids[r.RequestID] {
			t.Fatalf("duplicate request id %s", r.RequestID)
		}
		ids[r.RequestID] = true
		perAccount[r.Account]++
		if r.Op != "Converse" || !r.Final || !r.Complete || r.In < 1 || r.Out < 1 || r.Kind != "platform" {
			t.Errorf("record %+v", r)
		}
	}
	missing := 0
	for i := range tenants {
		n := perAccount[extraAccount(i)]
		if n > perTenant {
			t.Errorf("account %s: %d records, more than its %d requests", extraAccount(i), n, perTenant)
		}
		missing += perTenant - n
	}
	if missing != unmetered {
		t.Errorf("%d records missing across accounts, %d unmetered", missing, unmetered)
	}
	if len(perAccount) != tenants {
		t.Errorf("records for %d accounts, want %d: %v", len(perAccount), tenants, strings.Join(keys(perAccount), ","))
	}
}

// envoyCounter sums Envoy's counters whose name has the dotted part and
// ends in suffix.
func envoyCounter(t *testing.T, st *stack.Stack, part, suffix string) int {
	t.Helper()
	resp, err := http.Get(st.EnvoyAdminURL + "/stats?filter=" + suffix)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n, found := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasSuffix(name, "."+suffix) || !strings.Contains(name, "."+part+".") {
			continue
		}
		x, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			t.Fatalf("stat %q", line)
		}
		n += x
		found = true
	}
	if !found {
		t.Fatalf("no Envoy stat with .%s. ending in %s:\n%s", part, suffix, b)
	}
	return n
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestUsageTimeToFirstEvent is a benchmark (TENANTGATE_BENCH_METERING=1,
// run by bench/run.sh): the time to the first ConverseStream event through
// Envoy with the metering filter and without it, sequential requests. It
// prints a table (lines prefixed "TTFE") and asserts nothing about time.
func TestUsageTimeToFirstEvent(t *testing.T) {
	if os.Getenv("TENANTGATE_BENCH_METERING") != "1" {
		t.Skip("benchmark: set TENANTGATE_BENCH_METERING=1")
	}
	const warm, n = 10, 100
	medians := map[bool]time.Duration{}
	p90s := map[bool]time.Duration{}
	for _, metering := range []bool{true, false} {
		o := stack.Options{Models: freeModels, StreamDelay: 20 * time.Millisecond}
		if !metering {
			o.EnvoyDropFilters = []string{"envoy.filters.http.ext_proc.usage"}
		}
		st := startStack(t, o)
		alice := token(t, st, stack.AliceUserID)
		c := newCaller(t, st, callerOpts{token: alice})
		var ttfe []time.Duration
		for i := range warm + n {
			start := time.Now()
			out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(stack.DemoModel), Messages: userMessage("Hello")})
			if err != nil {
				t.Fatal(err)
			}
			first := true
			for range out.GetStream().Events() {
				if first && i >= warm {
					ttfe = append(ttfe, time.Since(start))
				}
				first = false
			}
			out.GetStream().Close()
		}
		slices.Sort(ttfe)
		medians[metering] = ttfe[len(ttfe)/2]
		p90s[metering] = ttfe[len(ttfe)*9/10]
		if err := st.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	t.Logf("TTFE| ConverseStream, %d sequential requests | p50 | p90 |", n)
	t.Logf("TTFE|---|---:|---:|")
	t.Logf("TTFE| metering off | %s | %s |", ms(medians[false]), ms(p90s[false]))
	t.Logf("TTFE| metering on | %s | %s |", ms(medians[true]), ms(p90s[true]))
	t.Logf("TTFE| on − off | %s | %s |", ms(medians[true]-medians[false]), ms(p90s[true]-p90s[false]))
}
