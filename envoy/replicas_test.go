package envoy_test

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/config"
)

// TestShippedReplicaSettings pins what lets several tenantgate replicas sit
// behind the tenantgate cluster: active gRPC health checks that notice a
// draining replica within tenantgate's default drain period, outlier
// detection for replicas that die without draining, a retry policy on the
// side-effect-free ext_authz Check that moves to another replica, and none
// on the ext_proc stream (which cannot be replayed once started).
func TestShippedReplicaSettings(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(envoy.Bootstrap, &doc); err != nil {
		t.Fatal(err)
	}
	dur := func(v any) time.Duration {
		d, err := time.ParseDuration(v.(string))
		if err != nil {
			t.Fatalf("duration %v: %v", v, err)
		}
		return d
	}
	for _, c := range get(t, doc, "static_resources", "clusters").([]any) {
		if get(t, c, "name") != "tenantgate" {
			continue
		}
		hc := get(t, c, "health_checks", 0)
		if _, ok := get(t, hc, "grpc_health_check").(map[string]any); !ok {
			t.Errorf("tenantgate health check is not grpc.health.v1: %v", hc)
		}
		detect := dur(get(t, hc, "interval"))*time.Duration(get(t, hc, "unhealthy_threshold").(int)) + dur(get(t, hc, "timeout"))
		if detect >= config.DefaultShutdownDrain {
			t.Errorf("health checks need %v to notice NOT_SERVING, not below server.shutdown_drain's default %v", detect, config.DefaultShutdownDrain)
		}
		od, ok := get(t, c, "outlier_detection").(map[string]any)
		if !ok || od["consecutive_gateway_failure"] == nil || od["enforcing_consecutive_gateway_failure"] != 100 {
			t.Errorf("tenantgate cluster outlier detection = %v, want enforced consecutive_gateway_failure", od)
		}
	}
	for i, l := range get(t, doc, "static_resources", "listeners").([]any) {
		filters := get(t, l, "filter_chains", 0, "filters", 0, "typed_config", "http_filters").([]any)
		seen := 0
		for _, f := range filters {
			name, _ := get(t, f, "name").(string)
			if strings.HasPrefix(name, "envoy.filters.http.ext_proc") {
				// Every ext_proc filter (signing, usage metering) streams.
				if rp := get(t, f, "typed_config", "grpc_service", "retry_policy"); rp != nil {
					t.Errorf("listener %d: %s must not retry its stream: %v", i, name, rp)
				}
			}
			switch name {
			case "envoy.filters.http.ext_authz":
				seen++
				rp, ok := get(t, f, "typed_config", "grpc_service", "retry_policy").(map[string]any)
				if !ok {
					t.Fatalf("listener %d: ext_authz grpc_service has no retry_policy", i)
				}
				on := rp["retry_on"].(string)
				for _, want := range []string{"connect-failure", "unavailable"} {
					if !strings.Contains(on, want) {
						t.Errorf("listener %d: ext_authz retry_on %q lacks %s", i, on, want)
					}
				}
				if _, ok := rp["retry_back_off"]; ok {
					t.Errorf("listener %d: ext_authz retry_back_off set: a short one cuts Checks short of the grpc_service timeout", i)
				}
				if y, _ := yaml.Marshal(rp["retry_host_predicate"]); !strings.Contains(string(y), "previous_hosts") {
					t.Errorf("listener %d: ext_authz retries may hit the same replica (no previous_hosts predicate)", i)
				}
			case "envoy.filters.http.ext_proc":
				seen++
			}
		}
		if seen != 2 {
			t.Errorf("listener %d: found %d of ext_authz/ext_proc", i, seen)
		}
	}
}
