package e2e_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// awsErrorsScrubbed: through the shipped Envoy configuration, Bedrock's
// AccessDeniedException (which names the signing role or user and its
// account) reaches the SDK as the same error type and status, with a
// message that names no account id, ARN, role or session.
func awsErrorsScrubbed(t *testing.T, st *stack.Stack) {
	acme := map[string]string{"x-account-id": stack.AcmeAccountID}
	digits12 := regexp.MustCompile(`(^|[^0-9])[0-9]{12}([^0-9]|$)`)
	for _, tc := range []struct {
		name string
		o    callerOpts
	}{
		{"tenant role", callerOpts{token: token(t, st, stack.AliceUserID), headers: acme}},
		{"platform user", callerOpts{token: token(t, st, stack.BobUserID)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(st.Records())
			c := newCaller(t, st, tc.o)
			_, err := c.converse(context.Background(), stack.DeniedModel)
			if r := oneRecord(t, st, n); r.ErrorType != "AccessDeniedException" {
				t.Fatalf("upstream answered %d %s", r.Status, r.ErrorType)
			}
			var ae smithy.APIError
			if statusOf(err) != 403 || !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
				t.Fatalf("want 403 AccessDeniedException, got %v", err)
			}
			msg := ae.ErrorMessage()
			if !strings.Contains(msg, "is not authorized to perform: bedrock:InvokeModel") {
				t.Fatalf("message lost: %q", msg)
			}
			for _, leak := range []string{"arn:aws", "AcmeBedrockAccess", "tenantgate-platform", "assumed-role"} {
				if strings.Contains(msg, leak) {
					t.Errorf("message reveals %q: %s", leak, msg)
				}
			}
			if digits12.MatchString(msg) {
				t.Errorf("message carries an account id: %s", msg)
			}
		})
	}
}
