// Command tenantgate-demo runs the whole local stack (Envoy with the shipped
// bootstrap, `tenantgate serve --demo` on the embedded demo tenants, AWS
// simulated by local fakes), sends one Converse for an enterprise team
// account and one for a free personal account, and prints who signed each
// request and where. It exits non-zero when anything differs from the expected routing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tenantgate/tenantgate/internal/stack"
)

func main() {
	hold := flag.Bool("hold", false, "keep the stack running after the demo until interrupted")
	verbose := flag.Bool("v", false, "log the stack's progress")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *hold, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// scenario is one demo call and what must happen to it.
type scenario struct {
	title, user, account, accountName, tier string
	teamHeader                              bool
	wantRegion, wantSigner                  string
	signerKind                              string
}

var scenarios = []scenario{
	{
		title: "alice acting for Acme (team account, enterprise tier)", user: stack.AliceUserID,
		account: stack.AcmeAccountID, accountName: "Acme Corp", tier: stack.AcmeTier, teamHeader: true,
		wantRegion: stack.AcmeRegion, wantSigner: "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/",
		signerKind: "Acme's own role, temporary STS credentials (AssumeRole with ExternalId)",
	},
	{
		title: "bob on his personal account (free tier)", user: stack.BobUserID,
		account: stack.BobPersonal, accountName: "Bob (personal)", tier: "free",
		wantRegion: stack.DefaultRegion, wantSigner: stack.PlatformPrincipal,
		signerKind: "the platform's own credentials (" + stack.PlatformAccessKey + ")",
	},
}

func run(ctx context.Context, out io.Writer, hold, verbose bool) error {
	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	fmt.Fprintln(out, "Starting Envoy + tenantgate + simulated AWS on 127.0.0.1 ...")
	sctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	st, err := stack.Start(sctx, stack.Options{Logger: logger})
	cancel()
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Fprintf(out, "Envoy listening on %s (shipped envoy/envoy.yaml, loopback addresses)\n\n", st.EnvoyURL)

	var failures []string
	for _, sc := range scenarios {
		if err := runScenario(ctx, out, st, sc); err != nil {
			failures = append(failures, sc.title+": "+err.Error())
			fmt.Fprintf(out, "  check      FAILED: %v\n\n", err)
		}
	}
	fmt.Fprint(out, `AWS in this demo is SIMULATED locally: a fake STS and a fake Bedrock runtime
that verify SigV4 like AWS does. Nothing left this machine.
To use real AWS: unset AWS_ENDPOINT_URL_STS, give tenantgate real platform
credentials (SDK default chain: environment, profile, IRSA or instance role),
store each enterprise tenant's role with "tenantgate routes set" (table
tenantgate.enterprise_bedrock_routing; "tenantgate routes test" proves it), and
run Envoy with envoy/envoy.yaml, whose bedrock_* clusters point at the real
regional endpoints (bedrock-runtime.<region>.amazonaws.com:443).
`)
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	fmt.Fprintln(out, "\nDemo OK: each tenant was signed by its own AWS identity in its own region.")
	if hold {
		tok, err := st.Token(stack.AliceUserID, 12*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nStack kept running (Ctrl-C to stop):\n  endpoint  %s\n  CA        %s\n  AWS_BEARER_TOKEN_BEDROCK (alice) %s\n  x-account-id (Acme) %s\n  fake records %s/_fake/records\n",
			st.EnvoyURL, st.Certs.CA, tok, stack.AcmeAccountID, st.FakeAdminURL)
		<-ctx.Done()
	}
	return nil
}

func runScenario(ctx context.Context, out io.Writer, st *stack.Stack, sc scenario) error {
	fmt.Fprintf(out, "== %s ==\n", sc.title)
	tok, err := st.Token(sc.user, time.Hour)
	if err != nil {
		return err
	}
	hc, err := st.HTTPClient("", "")
	if err != nil {
		return err
	}
	opts := bedrockruntime.Options{
		Region:                  "us-east-1",
		BaseEndpoint:            aws.String(st.EnvoyURL),
		HTTPClient:              hc,
		BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: tok}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
		RetryMaxAttempts:        1,
	}
	if sc.teamHeader {
		opts.APIOptions = append(opts.APIOptions, smithyhttp.AddHeaderValue("x-account-id", sc.account))
	}
	before := len(st.Records())
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := bedrockruntime.New(opts).Converse(cctx, &bedrockruntime.ConverseInput{
		ModelId:  aws.String(stack.DemoModel),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Who signed this request?"}}}},
	})
	if err != nil {
		return fmt.Errorf("converse: %w", err)
	}
	answer := ""
	if m, ok := res.Output.(*types.ConverseOutputMemberMessage); ok && len(m.Value.Content) > 0 {
		if t, ok := m.Value.Content[0].(*types.ContentBlockMemberText); ok {
			answer = t.Value
		}
	}
	recs := st.Records()[before:]
	if len(recs) != 1 {
		return fmt.Errorf("expected 1 request at AWS, saw %d", len(recs))
	}
	r := recs[0]
	fmt.Fprintf(out, "  account    %s (%s)\n", sc.account, sc.accountName)
	fmt.Fprintf(out, "  tier       %s\n", sc.tier)
	fmt.Fprintf(out, "  signed by  %s\n             %s\n", r.PrincipalARN, sc.signerKind)
	fmt.Fprintf(out, "  region     %s (%s)\n", r.Region, r.Host)
	fmt.Fprintf(out, "  model      %s\n", r.ModelID)
	fmt.Fprintf(out, "  answer     %q\n", answer)
	var problems []string
	if r.Region != sc.wantRegion {
		problems = append(problems, fmt.Sprintf("region %s, want %s", r.Region, sc.wantRegion))
	}
	if !strings.HasPrefix(r.PrincipalARN, sc.wantSigner) {
		problems = append(problems, fmt.Sprintf("signed by %s, want %s", r.PrincipalARN, sc.wantSigner))
	}
	if r.BearerAuthorization || r.APIKeyHeader {
		problems = append(problems, "the caller's credential reached AWS")
	}
	if r.Status != 200 || !strings.Contains(answer, r.PrincipalARN) {
		problems = append(problems, fmt.Sprintf("upstream status %d, answer does not name the signer", r.Status))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Fprintf(out, "  check      OK (the user's token never reached AWS)\n\n")
	return nil
}
