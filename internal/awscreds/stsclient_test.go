package awscreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	fakests "github.com/tenantgate/tenantgate/internal/fakeaws/sts"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// TestRealSTSClient drives the SDK's STS client against an HTTP endpoint
// speaking the STS query protocol, so that response parsing and the
// AccessDenied error code mapping are those of the real client.
func TestRealSTSClient(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		if r.Form.Get("Action") != "AssumeRole" || r.Form.Get("Tags.member.1.Key") != "account_id" {
			http.Error(w, "bad request", 400)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		switch r.Form.Get("ExternalId") {
		case "wrong":
			w.WriteHeader(403)
			fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		case "throttle":
			w.WriteHeader(400)
			fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>2</RequestId></ErrorResponse>`)
		default:
			exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIATEST</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/%s</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>3</RequestId></ResponseMetadata></AssumeRoleResponse>`, exp, url.QueryEscape(r.Form.Get("RoleSessionName")))
		}
	}))
	defer srv.Close()
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDPLATFORM", "platform", ""),
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   srv.Client(),
	}
	cache := New(Options{Config: testConfig(), STSForRegion: STSClients(cfg)})
	ctx := context.Background()
	for _, tc := range []struct {
		ext     string
		wantErr error
	}{
		{"good", nil},
		{"wrong", ErrRoleDenied},
		{"throttle", ErrUnavailable},
	} {
		r := route(1)
		r.ExternalID = tc.ext
		cr, err := cache.Credentials(ctx, r, "eu-west-1")
		if tc.wantErr == nil {
			if err != nil || cr.AccessKeyID != "ASIATEST" || cr.SessionToken != "tok" || !cr.CanExpire {
				t.Fatalf("%s: creds %+v err %v", tc.ext, cr, err)
			}
			continue
		}
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: err = %v, want %v", tc.ext, err, tc.wantErr)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), tc.ext) {
			t.Fatalf("error leaks detail: %v", err)
		}
	}
	if calls.Load() < 3 {
		t.Fatalf("%d STS HTTP calls", calls.Load())
	}
}

// TestFakeSTSSeesTagsAndSourceIdentity drives the cache through the SDK's
// STS client against the fake STS: the recorded calls carry the session
// tags and SourceIdentity of the tenant and of the platform session, and a
// role whose trust policy does not allow sts:TagSession or
// sts:SetSourceIdentity refuses them (ErrRoleDenied), as AWS does.
func TestFakeSTSSeesTagsAndSourceIdentity(t *testing.T) {
	const (
		platformKey, platformSecret = "AKIAPLATFORM00000001", "platform-secret"
		platformARN                 = "arn:aws:iam::999988887777:user/platform"
		tenantRole                  = "arn:aws:iam::111122223333:role/Tenant"
		untaggedRole                = "arn:aws:iam::111122223333:role/NoTagSession"
		noSourceRole                = "arn:aws:iam::111122223333:role/NoSourceIdentity"
		invokerRole                 = "arn:aws:iam::999988887777:role/Invoker"
		account                     = "a0000000-0000-4000-8000-000000000001"
	)
	store := credstore.New(nil)
	store.AddStatic(platformKey, platformSecret, platformARN)
	srv, err := fakests.New(fakests.Config{Credentials: store, Roles: []fakests.Role{
		{ARN: tenantRole, ExternalID: "ext-1", TagSession: true, SetSourceIdentity: true},
		{ARN: untaggedRole, ExternalID: "ext-1", SetSourceIdentity: true},
		{ARN: noSourceRole, ExternalID: "ext-1", TagSession: true},
		{ARN: invokerRole, TagSession: true, SetSourceIdentity: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(platformKey, platformSecret, ""),
		BaseEndpoint:     aws.String(hs.URL),
		RetryMaxAttempts: 1,
	}
	cache := New(Options{Config: testConfig(), STSForRegion: STSClients(cfg)})
	ctx := context.Background()
	r := tenant.Route{AccountID: account, RoleARN: tenantRole, ExternalID: "ext-1", Enabled: true, Tier: "enterprise"}
	if _, err := cache.Credentials(ctx, r, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.PlatformCredentials(ctx, invokerRole, account, "free", "us-east-1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ role, tier string }{{tenantRole, "enterprise"}, {invokerRole, "free"}} {
		var got []fakests.Call
		for _, c := range srv.Calls() {
			if c.RoleARN == tc.role {
				got = append(got, c)
			}
		}
		want := []fakests.Tag{{Key: "account_id", Value: account}, {Key: "tier", Value: tc.tier}}
		if len(got) != 1 || got[0].ErrorCode != "" || got[0].SourceIdentity != account || !slices.Equal(got[0].Tags, want) {
			t.Fatalf("%s: recorded calls %+v, want one with tags %v and SourceIdentity %s", tc.role, got, want, account)
		}
	}
	for _, role := range []string{untaggedRole, noSourceRole} {
		rr := r
		rr.RoleARN = role
		if _, err := cache.Credentials(ctx, rr, "eu-west-1"); !errors.Is(err, ErrRoleDenied) {
			t.Fatalf("%s: err = %v, want ErrRoleDenied", role, err)
		}
		if n := srv.CallCount(role); n != 1 {
			t.Fatalf("%s: %d calls", role, n)
		}
	}
}
