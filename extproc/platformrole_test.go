package extproc

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	fakests "github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/identity"
)

func withPlatformRole(role string) worldOption {
	return func(_ *bedrock.Config, o *Options) { o.Config.PlatformRoleARN = role }
}

// TestPlatformRoleSessionsPerTenant: with extproc.platform_role_arn,
// platform-signed requests are signed by a session of the platform's invoker
// role per tenant: N requests of one tenant make one AssumeRole, two tenants
// two, each tagged with the tenant's account and tier and with the account
// as SourceIdentity; Bedrock sees each tenant as its own principal.
func TestPlatformRoleSessionsPerTenant(t *testing.T) {
	w := newAWSWorld(t, 0, withPlatformRole(fakeInvokerRoleARN))
	w.sts.Faults().SetLatency(10 * time.Millisecond)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	tenants := []*identity.Identity{
		{AccountID: "acct-pro-1", Tier: "pro"},
		{AccountID: "acct-free-2", Tier: "free"},
	}
	const perTenant = 10
	var wg sync.WaitGroup
	errs := make(chan error, len(tenants)*perTenant)
	for _, id := range tenants {
		for range perTenant {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, rb, err := w.send(t, id, "POST", haikuPath, body); status != 200 {
					errs <- fmt.Errorf("%s: %d %s %v", id.AccountID, status, rb, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := w.sts.CallCount(fakeInvokerRoleARN); n != len(tenants) {
		t.Fatalf("%d AssumeRole calls of the invoker role for %d tenants × %d requests, want %d", n, len(tenants), perTenant, len(tenants))
	}
	for _, id := range tenants {
		var got []fakests.Call
		for _, c := range w.sts.Calls() {
			if c.SourceIdentity == id.AccountID {
				got = append(got, c)
			}
		}
		want := []fakests.Tag{{Key: "account_id", Value: id.AccountID}, {Key: "tier", Value: id.Tier}}
		if len(got) != 1 || got[0].RoleARN != fakeInvokerRoleARN || got[0].ExternalID != "" || got[0].Principal != fakePlatformARN ||
			!slices.Equal(got[0].Tags, want) || got[0].RoleSessionName != "tenantgate-"+id.AccountID {
			t.Fatalf("%s: AssumeRole calls %+v, want one with tags %v", id.AccountID, got, want)
		}
	}
	by := map[string]int{}
	for _, rec := range w.bedrock.Records() {
		checkRecord(t, rec)
		by[rec.PrincipalARN]++
	}
	for _, id := range tenants {
		p := "arn:aws:sts::000000000000:assumed-role/tenantgate-invoker/tenantgate-" + id.AccountID
		if by[p] != perTenant {
			t.Fatalf("Bedrock principals %v, want %d requests by %s", by, perTenant, p)
		}
	}
	if len(by) != len(tenants) {
		t.Fatalf("Bedrock principals %v", by)
	}
}

// TestPlatformRoleDenied: an invoker role the platform may not assume (or
// not tag) fails closed: 502, nothing reaches Bedrock, and the base
// credentials are never used instead.
func TestPlatformRoleDenied(t *testing.T) {
	w := newAWSWorld(t, 0, withPlatformRole("arn:aws:iam::000000000000:role/not-trusted"))
	status, rb, err := w.send(t, &identity.Identity{AccountID: "acct-pro-1", Tier: "pro"}, "POST", haikuPath, []byte(`{}`))
	if err != nil || status != 502 || !strings.Contains(rb, "platform_credentials_unavailable") {
		t.Fatalf("status %d body %s err %v", status, rb, err)
	}
	if n := len(w.bedrock.Records()); n != 0 {
		t.Fatalf("%d requests reached Bedrock", n)
	}
}
