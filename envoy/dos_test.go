package envoy_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/apierror"
)

// lookup follows path (map keys and list indexes) through a decoded YAML
// document; ok is false as soon as a step is missing.
func lookup(v any, path ...any) (any, bool) {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil, false
			}
			v = s[k]
		}
	}
	return v, true
}

// byName returns the entry of a list of {name: …} maps with the given name.
func byName(list any, name string) (any, bool) {
	s, _ := list.([]any)
	for _, e := range s {
		if n, _ := lookup(e, "name"); n == name {
			return e, true
		}
	}
	return nil, false
}

func shippedDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(envoy.Bootstrap, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestShippedOverloadManager pins the overload manager: a heap limit with
// shrink, reset-expensive-streams, reduce-timeouts and stop-accepting
// actions in rising order, and a global downstream connection limit that
// the loopback admin listener is exempt from.
func TestShippedOverloadManager(t *testing.T) {
	doc := shippedDoc(t)
	om, ok := lookup(doc, "overload_manager")
	if !ok {
		t.Fatal("no overload_manager")
	}
	monitors, _ := lookup(om, "resource_monitors")
	heap, ok := byName(monitors, "envoy.resource_monitors.fixed_heap")
	if !ok {
		t.Fatal("no fixed_heap resource monitor")
	}
	if n, _ := lookup(heap, "typed_config", "max_heap_size_bytes"); toInt(n) < 256<<20 {
		t.Errorf("fixed_heap max_heap_size_bytes = %v, want a real limit (>= 256 MiB)", n)
	}
	conns, ok := byName(monitors, "envoy.resource_monitors.global_downstream_max_connections")
	if !ok {
		t.Fatal("no global_downstream_max_connections resource monitor")
	}
	if n, _ := lookup(conns, "typed_config", "max_active_downstream_connections"); toInt(n) <= 0 || toInt(n) > 100000 {
		t.Errorf("max_active_downstream_connections = %v, want a bounded positive limit", n)
	}
	if v, _ := lookup(doc, "admin", "ignore_global_conn_limit"); v != true {
		t.Errorf("admin.ignore_global_conn_limit = %v, want true (probes must work at the connection limit)", v)
	}
	if n, _ := lookup(om, "buffer_factory_config", "minimum_account_to_track_power_of_two"); toInt(n) < 10 || toInt(n) > 24 {
		t.Errorf("buffer_factory_config.minimum_account_to_track_power_of_two = %v, want streams of >= 1 KiB..16 MiB tracked", n)
	}
	actions, _ := lookup(om, "actions")
	level := func(name string) float64 {
		t.Helper()
		a, ok := byName(actions, name)
		if !ok {
			t.Errorf("no overload action %s", name)
			return 0
		}
		if trig, _ := lookup(a, "triggers", 0, "name"); trig != "envoy.resource_monitors.fixed_heap" {
			t.Errorf("%s is triggered by %v, want the fixed_heap monitor", name, trig)
		}
		if v, ok := lookup(a, "triggers", 0, "threshold", "value"); ok {
			return toFloat(v)
		}
		if v, ok := lookup(a, "triggers", 0, "scaled", "saturation_threshold"); ok {
			return toFloat(v)
		}
		t.Errorf("%s has no threshold or scaled trigger", name)
		return 0
	}
	shrink := level("envoy.overload_actions.shrink_heap")
	reset := level("envoy.overload_actions.reset_high_memory_stream")
	reduce := level("envoy.overload_actions.reduce_timeouts")
	stop := level("envoy.overload_actions.stop_accepting_requests")
	if !(0 < reduce && reduce <= stop && 0 < reset && reset <= stop && 0 < shrink && shrink <= stop && stop < 1) {
		t.Errorf("overload levels shrink=%v reset=%v reduce=%v stop=%v: every action must act before stop_accepting_requests, below 100%%", shrink, reset, reduce, stop)
	}
	if a, ok := byName(actions, "envoy.overload_actions.reduce_timeouts"); ok {
		timers := map[string]bool{}
		fs, _ := lookup(a, "typed_config", "timer_scale_factors")
		for _, f := range asList(fs) {
			tm, _ := lookup(f, "timer")
			timers[fmt.Sprint(tm)] = true
		}
		for _, want := range []string{"HTTP_DOWNSTREAM_CONNECTION_IDLE", "HTTP_DOWNSTREAM_STREAM_IDLE"} {
			if !timers[want] {
				t.Errorf("reduce_timeouts does not scale %s", want)
			}
		}
	}
}

// TestShippedHTTPLimits pins, on both listeners, the HTTP/2 stream and
// flow-control window limits, the header/idle/slow-request timeouts and
// header limits of the HTTP connection manager, and the per-connection
// buffer limit that bounds one stream's buffered body.
func TestShippedHTTPLimits(t *testing.T) {
	doc := shippedDoc(t)
	listeners, _ := lookup(doc, "static_resources", "listeners")
	if len(asList(listeners)) != 2 {
		t.Fatalf("listeners = %d, want 2", len(asList(listeners)))
	}
	for i, l := range asList(listeners) {
		if n, _ := lookup(l, "per_connection_buffer_limit_bytes"); toInt(n) <= 10<<20 || toInt(n) > 16<<20 {
			t.Errorf("listener %d per_connection_buffer_limit_bytes = %v, want above the 10 MiB body limit and at most 16 MiB", i, n)
		}
		hcm, ok := lookup(l, "filter_chains", 0, "filters", 0, "typed_config")
		if !ok {
			t.Fatalf("listener %d: no HTTP connection manager", i)
		}
		if v, _ := lookup(hcm, "codec_type"); v != "AUTO" {
			t.Errorf("listener %d codec_type = %v, want AUTO (HTTP/1.1 and HTTP/2)", i, v)
		}
		h2, _ := lookup(hcm, "http2_protocol_options")
		tests := []struct {
			name     string
			v        any
			min, max int
		}{
			{"http2 max_concurrent_streams", field(h2, "max_concurrent_streams"), 1, 100},
			// A buffered body must fit the stream window (see
			// TestHTTP2LargeBodyIsBuffered): at least the buffer limit.
			{"http2 initial_stream_window_size", field(h2, "initial_stream_window_size"), toInt(field(l, "per_connection_buffer_limit_bytes")), 16 << 20},
			{"http2 initial_connection_window_size", field(h2, "initial_connection_window_size"), 65535, 1 << 20},
			{"common max_headers_count", field(hcm, "common_http_protocol_options", "max_headers_count"), 1, 100},
			{"max_request_headers_kb", field(hcm, "max_request_headers_kb"), 8, 60},
		}
		for _, tc := range tests {
			if n := toInt(tc.v); n < tc.min || n > tc.max {
				t.Errorf("listener %d %s = %v, want %d..%d", i, tc.name, tc.v, tc.min, tc.max)
			}
		}
		durations := []struct {
			name string
			path []any
			max  int // seconds; 0 < value <= max
		}{
			{"request_headers_timeout", []any{"request_headers_timeout"}, 30},
			{"request_timeout (whole request received)", []any{"request_timeout"}, 300},
			{"stream_idle_timeout", []any{"stream_idle_timeout"}, 300},
			{"connection idle_timeout", []any{"common_http_protocol_options", "idle_timeout"}, 3600},
		}
		for _, d := range durations {
			v, _ := lookup(hcm, d.path...)
			if s := seconds(v); s <= 0 || s > d.max {
				t.Errorf("listener %d %s = %v, want 1s..%ds", i, d.name, v, d.max)
			}
		}
		if v, _ := lookup(hcm, "common_http_protocol_options", "headers_with_underscores_action"); v != "REJECT_REQUEST" {
			t.Errorf("listener %d headers_with_underscores_action = %v", i, v)
		}
	}
}

// TestShippedLocalRateLimit pins the listener-wide token bucket: first in
// the filter chain (a flood is cut before ext_authz reaches tenantgate and
// the database), enforced for 100% of requests, and answering like AWS
// throttling so Bedrock SDKs back off: 429, x-amzn-errortype
// ThrottlingException, a JSON message, and tenantgate's stable code.
func TestShippedLocalRateLimit(t *testing.T) {
	doc := shippedDoc(t)
	listeners, _ := lookup(doc, "static_resources", "listeners")
	for i, l := range asList(listeners) {
		hcm, _ := lookup(l, "filter_chains", 0, "filters", 0, "typed_config")
		first, _ := lookup(hcm, "http_filters", 0)
		if name, _ := lookup(first, "name"); name != "envoy.filters.http.local_ratelimit" {
			t.Fatalf("listener %d: first HTTP filter is %v, want envoy.filters.http.local_ratelimit", i, name)
		}
		rl, _ := lookup(first, "typed_config")
		for _, k := range []string{"filter_enabled", "filter_enforced"} {
			num, _ := lookup(rl, k, "default_value", "numerator")
			den, ok := lookup(rl, k, "default_value", "denominator")
			if toInt(num) != 100 || (ok && den != "HUNDRED") {
				t.Errorf("listener %d %s = %v/%v, want 100%% (unset means disabled)", i, k, num, den)
			}
		}
		maxTok := toInt(field(rl, "token_bucket", "max_tokens"))
		perFill := toInt(field(rl, "token_bucket", "tokens_per_fill"))
		fill := seconds(field(rl, "token_bucket", "fill_interval"))
		if maxTok <= 0 || perFill <= 0 || fill <= 0 || maxTok > 10000 {
			t.Errorf("listener %d token bucket max=%d per_fill=%d interval=%ds", i, maxTok, perFill, fill)
		}
		if v, ok := lookup(rl, "local_rate_limit_per_downstream_connection"); ok && v != false {
			t.Errorf("listener %d: a per-connection bucket is bypassed by opening connections", i)
		}
		if s, ok := lookup(rl, "status", "code"); ok && s != "TooManyRequests" {
			t.Errorf("listener %d rate limit status = %v, want 429", i, s)
		}
		hdrs := map[string]string{}
		list, _ := lookup(rl, "response_headers_to_add")
		for _, h := range asList(list) {
			k, _ := lookup(h, "header", "key")
			v, _ := lookup(h, "header", "value")
			hdrs[fmt.Sprint(k)] = fmt.Sprint(v)
		}
		// The reply is the catalogue's rate_limited: its headers (the
		// JSON body format supplies content-type) and its body fields.
		want := apierror.New(apierror.RateLimited)
		for _, h := range want.Headers() {
			if h.Name != apierror.HeaderContentType && hdrs[h.Name] != h.Value {
				t.Errorf("listener %d rate-limit header %s = %q, want %q", i, h.Name, hdrs[h.Name], h.Value)
			}
		}
		if len(hdrs) != len(want.Headers())-1 {
			t.Errorf("listener %d rate-limit headers %v, want %v", i, hdrs, want.Headers())
		}
		mapper, ok := rateLimitMapper(hcm)
		if !ok {
			t.Errorf("listener %d: no local_reply_config mapper for the rate limit's replies", i)
			continue
		}
		var wantBody map[string]any
		if err := json.Unmarshal(want.Body(), &wantBody); err != nil {
			t.Fatal(err)
		}
		if got, _ := lookup(mapper, "body_format_override", "json_format"); !reflect.DeepEqual(got, wantBody) {
			t.Errorf("listener %d: rate-limited reply body format %v, want %v", i, got, wantBody)
		}
	}
}

// rateLimitMapper returns the local reply mapper that selects exactly the
// rate limit's replies (response code details "local_rate_limited").
func rateLimitMapper(hcm any) (any, bool) {
	mappers, _ := lookup(hcm, "local_reply_config", "mappers")
	for _, m := range asList(mappers) {
		name, _ := lookup(m, "filter", "extension_filter", "name")
		expr, _ := lookup(m, "filter", "extension_filter", "typed_config", "expression")
		if name == "envoy.access_loggers.extension_filters.cel" && expr == "response.code_details == 'local_rate_limited'" {
			return m, true
		}
	}
	return nil, false
}

func field(v any, path ...any) any {
	x, _ := lookup(v, path...)
	return x
}

func asList(v any) []any {
	s, _ := v.([]any)
	return s
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case uint64:
		return int(n)
	case float64:
		return int(n)
	}
	return -1
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return -1
}

// seconds parses an Envoy duration of whole seconds ("300s"); -1 otherwise.
func seconds(v any) int {
	s, ok := v.(string)
	if !ok {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(s, "%ds", &n); err != nil || fmt.Sprintf("%ds", n) != s {
		return -1
	}
	return n
}
