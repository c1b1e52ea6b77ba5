package sts_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/tenantgate/tenantgate/internal/fakeaws/credstore"
	"github.com/tenantgate/tenantgate/internal/fakeaws/fault"
	"github.com/tenantgate/tenantgate/internal/fakeaws/sts"
)

const (
	platformKey    = "AKIAPLATFORMEXAMPLE01"
	platformSecret = "platformSecretKeyExample0000000000000000"
	platformARN    = "arn:aws:iam::999988887777:user/tenantgate-platform"
	roleARN        = "arn:aws:iam::111122223333:role/AcmeBedrockAccess"
	openRoleARN    = "arn:aws:iam::111122223333:role/path/NoExternalId"
	externalID     = "acme-external-id-7f3c"
	// tagOnlyRoleARN's trust policy allows sts:TagSession but not
	// sts:SetSourceIdentity.
	tagOnlyRoleARN = "arn:aws:iam::111122223333:role/TagOnly"
)

type env struct {
	srv   *sts.Server
	creds *credstore.Store
	url   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := credstore.New(nil)
	store.AddStatic(platformKey, platformSecret, platformARN)
	s, err := sts.New(sts.Config{
		Credentials: store,
		Regions:     []string{"us-east-1", "eu-west-1"},
		Roles: []sts.Role{
			{ARN: roleARN, ExternalID: externalID, MaxSessionDuration: time.Hour, Principals: []string{platformARN}, TagSession: true, SetSourceIdentity: true},
			{ARN: openRoleARN},
			{ARN: tagOnlyRoleARN, ExternalID: externalID, TagSession: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &env{srv: s, creds: store, url: hs.URL}
}

func (e *env) client(region, key, secret, token string) *awssts.Client {
	return awssts.NewFromConfig(aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, token),
		BaseEndpoint:     aws.String(e.url),
		RetryMaxAttempts: 1,
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAssumeRoleSuccess(t *testing.T) {
	e := newEnv(t)
	c := e.client("eu-west-1", platformKey, platformSecret, "")
	start := time.Now()
	in := &awssts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String("tenantgate-acct-1234"),
		ExternalId:      aws.String(externalID),
		DurationSeconds: aws.Int32(900),
		Tags:            []ststypes.Tag{{Key: aws.String("account_id"), Value: aws.String("8b1c2c0e-0000-4000-8000-000000000001")}, {Key: aws.String("plan"), Value: aws.String("enterprise")}},
		SourceIdentity:  aws.String("8b1c2c0e-0000-4000-8000-000000000001"),
	}
	out, err := c.AssumeRole(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	if !strings.HasPrefix(*cr.AccessKeyId, "ASIA") || *cr.SecretAccessKey == "" || *cr.SessionToken == "" {
		t.Fatalf("credentials %+v", cr)
	}
	if d := cr.Expiration.Sub(start); d < 899*time.Second || d > 901*time.Second {
		t.Fatalf("expiration in %v, want 900s", d)
	}
	if got, want := *out.AssumedRoleUser.Arn, "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/tenantgate-acct-1234"; got != want {
		t.Fatalf("arn %q, want %q", got, want)
	}
	if !strings.HasPrefix(*out.AssumedRoleUser.AssumedRoleId, "AROA") || !strings.HasSuffix(*out.AssumedRoleUser.AssumedRoleId, ":tenantgate-acct-1234") {
		t.Fatalf("assumed role id %q", *out.AssumedRoleUser.AssumedRoleId)
	}
	if out.PackedPolicySize == nil || *out.PackedPolicySize <= 0 {
		t.Fatalf("packed policy size %v", out.PackedPolicySize)
	}
	reg, ok := e.creds.LookupCredential(context.Background(), *cr.AccessKeyId)
	if !ok || reg.SessionToken != *cr.SessionToken || reg.PrincipalARN != *out.AssumedRoleUser.Arn {
		t.Fatalf("issued credential not registered: %+v", reg)
	}
	out2, err := c.AssumeRole(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if *out2.Credentials.AccessKeyId == *cr.AccessKeyId {
		t.Fatal("access key reused across calls")
	}
	if n := e.srv.CallCount(roleARN); n != 2 {
		t.Fatalf("CallCount = %d", n)
	}
	calls := e.srv.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls %d", len(calls))
	}
	c0 := calls[0]
	if c0.RoleARN != roleARN || c0.RoleSessionName != "tenantgate-acct-1234" || c0.ExternalID != externalID || c0.Principal != platformARN ||
		c0.Region != "eu-west-1" || c0.DurationSeconds != 900 || len(c0.Tags) != 2 || c0.Tags[1] != (sts.Tag{Key: "plan", Value: "enterprise"}) ||
		c0.IssuedKeyID != *cr.AccessKeyId || c0.ErrorCode != "" || c0.Time.IsZero() || c0.SourceIdentity != "8b1c2c0e-0000-4000-8000-000000000001" {
		t.Fatalf("recorded call %+v", c0)
	}
	// No external id required for this role; default duration 3600.
	out3, err := c.AssumeRole(context.Background(), &awssts.AssumeRoleInput{RoleArn: aws.String(openRoleARN), RoleSessionName: aws.String("s1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := *out3.AssumedRoleUser.Arn; got != "arn:aws:sts::111122223333:assumed-role/NoExternalId/s1" {
		t.Fatalf("arn %q", got)
	}
	e.srv.ResetCalls()
	if len(e.srv.Calls()) != 0 || e.srv.CallCount(roleARN) != 0 {
		t.Fatal("reset did not clear")
	}
}

func TestAssumeRoleErrors(t *testing.T) {
	e := newEnv(t)
	platform := e.client("us-east-1", platformKey, platformSecret, "")
	// Temporary credentials from a first AssumeRole.
	first, err := platform.AssumeRole(context.Background(), &awssts.AssumeRoleInput{RoleArn: aws.String(openRoleARN), RoleSessionName: aws.String("first")})
	if err != nil {
		t.Fatal(err)
	}
	tmp := first.Credentials
	good := func() *awssts.AssumeRoleInput {
		return &awssts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("tenantgate-x"), ExternalId: aws.String(externalID)}
	}
	cases := []struct {
		name     string
		client   *awssts.Client
		in       func() *awssts.AssumeRoleInput
		code     string
		status   int
		msgParts []string
	}{
		{"wrong external id", platform, func() *awssts.AssumeRoleInput { in := good(); in.ExternalId = aws.String("other-id"); return in }, "AccessDenied", 403,
			[]string{"User: " + platformARN + " is not authorized to perform: sts:AssumeRole on resource: " + roleARN}},
		{"missing external id", platform, func() *awssts.AssumeRoleInput { in := good(); in.ExternalId = nil; return in }, "AccessDenied", 403, []string{"sts:AssumeRole"}},
		{"unknown role", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.RoleArn = aws.String("arn:aws:iam::111122223333:role/Nope")
			return in
		}, "AccessDenied", 403, []string{"arn:aws:iam::111122223333:role/Nope"}},
		{"temporary principal not allowed", e.client("us-east-1", *tmp.AccessKeyId, *tmp.SecretAccessKey, *tmp.SessionToken), good, "AccessDenied", 403, []string{"assumed-role/NoExternalId/first"}},
		{"session name too short", platform, func() *awssts.AssumeRoleInput { in := good(); in.RoleSessionName = aws.String("a"); return in }, "ValidationError", 400, []string{"roleSessionName"}},
		{"session name bad chars", platform, func() *awssts.AssumeRoleInput { in := good(); in.RoleSessionName = aws.String("bad name!"); return in }, "ValidationError", 400, []string{"regular expression"}},
		{"session name too long", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.RoleSessionName = aws.String(strings.Repeat("a", 65))
			return in
		}, "ValidationError", 400, []string{"roleSessionName"}},
		{"duration too short", platform, func() *awssts.AssumeRoleInput { in := good(); in.DurationSeconds = aws.Int32(899); return in }, "ValidationError", 400, []string{"durationSeconds"}},
		{"duration above role max", platform, func() *awssts.AssumeRoleInput { in := good(); in.DurationSeconds = aws.Int32(3601); return in }, "ValidationError", 400, []string{"MaxSessionDuration"}},
		{"bad tag key", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.Tags = []ststypes.Tag{{Key: aws.String("bad*key"), Value: aws.String("v")}}
			return in
		}, "ValidationError", 400, []string{"tags.1.member.key"}},
		{"duplicate tag keys", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.Tags = []ststypes.Tag{{Key: aws.String("k"), Value: aws.String("1")}, {Key: aws.String("K"), Value: aws.String("2")}}
			return in
		}, "ValidationError", 400, []string{"Duplicate tag keys"}},
		{"tags without sts:TagSession", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.RoleArn = aws.String(openRoleARN)
			in.ExternalId = nil
			in.Tags = []ststypes.Tag{{Key: aws.String("account_id"), Value: aws.String("a1")}}
			return in
		}, "AccessDenied", 403, []string{"User: " + platformARN + " is not authorized to perform: sts:TagSession on resource: " + openRoleARN}},
		{"source identity without sts:SetSourceIdentity", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.RoleArn = aws.String(tagOnlyRoleARN)
			in.Tags = []ststypes.Tag{{Key: aws.String("account_id"), Value: aws.String("a1")}}
			in.SourceIdentity = aws.String("acct-1")
			return in
		}, "AccessDenied", 403, []string{"User: " + platformARN + " is not authorized to perform: sts:SetSourceIdentity on resource: " + tagOnlyRoleARN}},
		{"source identity too short", platform, func() *awssts.AssumeRoleInput { in := good(); in.SourceIdentity = aws.String("a"); return in }, "ValidationError", 400, []string{"sourceIdentity"}},
		{"source identity bad chars", platform, func() *awssts.AssumeRoleInput { in := good(); in.SourceIdentity = aws.String("a b"); return in }, "ValidationError", 400, []string{"sourceIdentity", "regular expression"}},
		{"source identity too long", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.SourceIdentity = aws.String(strings.Repeat("a", 65))
			return in
		}, "ValidationError", 400, []string{"sourceIdentity"}},
		{"source identity reserved prefix", platform, func() *awssts.AssumeRoleInput { in := good(); in.SourceIdentity = aws.String("aws:x"); return in }, "ValidationError", 400, []string{"aws:"}},
		{"reserved tag key", platform, func() *awssts.AssumeRoleInput {
			in := good()
			in.Tags = []ststypes.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}
			return in
		}, "ValidationError", 400, []string{"aws:"}},
		{"wrong secret", e.client("us-east-1", platformKey, "wrong", ""), good, "SignatureDoesNotMatch", 403, []string{"signature we calculated does not match"}},
		{"unknown key", e.client("us-east-1", "AKIAUNKNOWNKEY000000", "x", ""), good, "InvalidClientTokenId", 403, []string{"security token included in the request is invalid"}},
		{"temp key without token", e.client("us-east-1", *tmp.AccessKeyId, *tmp.SecretAccessKey, ""), good, "InvalidClientTokenId", 403, nil},
		{"region not served", e.client("ap-south-1", platformKey, platformSecret, ""), good, "SignatureDoesNotMatch", 403, []string{"region"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.client.AssumeRole(context.Background(), c.in())
			if err == nil {
				t.Fatal("expected error")
			}
			if got := apiCode(err); got != c.code {
				t.Fatalf("code %q, want %q (%v)", got, c.code, err)
			}
			var re interface{ HTTPStatusCode() int }
			if errors.As(err, &re) && re.HTTPStatusCode() != c.status {
				t.Fatalf("status %d, want %d", re.HTTPStatusCode(), c.status)
			}
			for _, p := range c.msgParts {
				if !strings.Contains(err.Error(), p) {
					t.Fatalf("error %q lacks %q", err, p)
				}
			}
			if strings.Contains(err.Error(), platformSecret) || strings.Contains(err.Error(), *tmp.SessionToken) {
				t.Fatal("secret leaked in error")
			}
		})
	}
	if n := e.srv.CallCount(roleARN); n < 10 {
		t.Fatalf("failed calls not counted: %d", n)
	}
	for _, c := range e.srv.Calls() {
		if c.RoleARN == roleARN && c.ErrorCode == "" {
			t.Fatalf("failed call recorded as success: %+v", c)
		}
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	c := e.client("us-east-1", platformKey, platformSecret, "")
	in := &awssts.AssumeRoleInput{RoleArn: aws.String(openRoleARN), RoleSessionName: aws.String("s1")}
	f := e.srv.Faults()
	if err := f.SetMode(fault.Mode503); err != nil {
		t.Fatal(err)
	}
	_, err := c.AssumeRole(context.Background(), in)
	var re interface{ HTTPStatusCode() int }
	if err == nil || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable || apiCode(err) != "ServiceUnavailable" {
		t.Fatalf("503 mode: %v", err)
	}
	_ = f.SetMode(fault.ModeDrop)
	_, err = c.AssumeRole(context.Background(), in)
	if err == nil || apiCode(err) != "" {
		t.Fatalf("drop mode: want transport error, got %v", err)
	}
	_ = f.SetMode(fault.ModeNone)
	f.SetLatency(200 * time.Millisecond)
	start := time.Now()
	if _, err := c.AssumeRole(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("latency not applied: %v", el)
	}
	f.SetLatency(0)
	f.FailNext(1)
	if _, err := c.AssumeRole(context.Background(), in); apiCode(err) != "ServiceUnavailable" {
		t.Fatalf("fail-next: %v", err)
	}
	if _, err := c.AssumeRole(context.Background(), in); err != nil {
		t.Fatalf("after fail-next: %v", err)
	}
}

func TestRawQueryErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, method, ct, body string
		status                 int
		code                   string
	}{
		{"unsigned", "POST", "application/x-www-form-urlencoded", "Action=AssumeRole&Version=2011-06-15", 403, "<Code>MissingAuthenticationToken</Code>"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, e.url+"/", strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b := string(raw)
		if resp.StatusCode != c.status || !strings.Contains(b, c.code) || !strings.Contains(b, "<ErrorResponse") || !strings.Contains(b, "<Type>Sender</Type>") || !strings.Contains(b, "<RequestId>") {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, b)
		}
	}
}

func TestNewRejectsBadRoles(t *testing.T) {
	store := credstore.New(nil)
	for _, r := range []sts.Role{{ARN: "arn:aws:iam::123:role/x"}, {ARN: "not-an-arn"}, {ARN: roleARN, MaxSessionDuration: 13 * time.Hour}} {
		if _, err := sts.New(sts.Config{Credentials: store, Roles: []sts.Role{r}}); err == nil {
			t.Errorf("role %+v accepted", r)
		}
	}
	if _, err := sts.New(sts.Config{}); err == nil {
		t.Error("missing registry accepted")
	}
}
