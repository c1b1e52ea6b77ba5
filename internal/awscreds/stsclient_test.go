package awscreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
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
