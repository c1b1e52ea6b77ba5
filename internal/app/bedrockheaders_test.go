package app

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

// TestAppBedrockHeadersFollowPlans: the served ext_proc applies the plans
// configuration to the tier in ext_authz's metadata: a tier listed under
// plans.bedrock_headers may have x-amzn-bedrock-service-tier signed, any
// other tier gets the default list (trace, not service tier).
func TestAppBedrockHeadersFollowPlans(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Plans.Models["pro"] = []string{"*"}
	cfg.Plans.BedrockHeaders = map[string][]string{"pro": {"x-amzn-bedrock-service-tier"}}
	r := startApp(t, cfg)
	cases := []struct {
		tier            string
		signed, removed string
	}{
		{"free", "x-amzn-bedrock-trace", "x-amzn-bedrock-service-tier"},
		{"pro", "x-amzn-bedrock-service-tier", "x-amzn-bedrock-trace"},
	}
	for _, tc := range cases {
		t.Run(tc.tier, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stream, err := extprocv3.NewExternalProcessorClient(r.conn).Process(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := identity.Identity{AccountID: filestore.DemoAliceAccountID, UserID: filestore.DemoAliceUserID, Tier: tc.tier, Role: "owner", Principal: identity.PrincipalUser, Credential: "jwt"}
			if err := stream.Send(&extprocv3.ProcessingRequest{
				Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
					Headers: headerMap(map[string]string{":method": "POST", ":path": "/model/amazon.nova-lite-v1%3A0/converse", ":authority": "gw.example",
						"x-amzn-bedrock-service-tier": "priority", "x-amzn-bedrock-trace": "ENABLED"}),
					EndOfStream: true,
				}},
				MetadataContext: metadataFor(id),
			}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			hm := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
			var auth string
			for _, h := range hm.GetSetHeaders() {
				if h.GetHeader().GetKey() == "authorization" {
					auth = string(h.GetHeader().GetRawValue())
				}
			}
			if !strings.Contains(auth, tc.signed) || strings.Contains(auth, tc.removed) {
				t.Errorf("authorization %q: want %s signed, %s not", auth, tc.signed, tc.removed)
			}
			if !slices.Contains(hm.GetRemoveHeaders(), tc.removed) || slices.Contains(hm.GetRemoveHeaders(), tc.signed) {
				t.Errorf("removed %v", hm.GetRemoveHeaders())
			}
		})
	}
}
