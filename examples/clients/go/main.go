// Command bedrock-client calls Bedrock Converse through tenantgate with the
// AWS SDK for Go v2, authenticating with the user's Supabase access token
// (or a platform API key) instead of AWS credentials.
//
//	TENANTGATE_URL=https://llm.example.com \
//	SUPABASE_ACCESS_TOKEN=eyJ... \
//	ACCOUNT_ID=<team account uuid, optional> \
//	go run ./examples/clients/go
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	endpoint := os.Getenv("TENANTGATE_URL") // Envoy's TLS listener
	token := os.Getenv("SUPABASE_ACCESS_TOKEN")
	if endpoint == "" || token == "" {
		log.Fatal("set TENANTGATE_URL and SUPABASE_ACCESS_TOKEN")
	}
	model := os.Getenv("MODEL_ID")
	if model == "" {
		model = "anthropic.claude-3-haiku-20240307-v1:0"
	}

	client := bedrockruntime.New(bedrockruntime.Options{
		// The region only shapes the SDK's request; tenantgate picks the
		// tenant's region and re-signs for it.
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		// Send "Authorization: Bearer <token>" instead of a SigV4 signature.
		AuthSchemePreference: []string{"httpBearerAuth"},
		BearerAuthTokenProvider: bearer.TokenProviderFunc(func(context.Context) (bearer.Token, error) {
			return bearer.Token{Value: token}, nil
		}),
	}, func(o *bedrockruntime.Options) {
		// A team account is chosen with x-account-id; without it the user's
		// personal account is used. For a platform API key, send
		// x-api-key: pk_...:sk_... instead of the bearer token.
		if acct := os.Getenv("ACCOUNT_ID"); acct != "" {
			o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("x-account-id", acct))
		}
	})

	out, err := client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId: aws.String(model),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Say hello in one word."}},
		}},
	})
	if err != nil {
		log.Fatalf("converse: %v", err)
	}
	if msg, ok := out.Output.(*types.ConverseOutputMemberMessage); ok {
		for _, c := range msg.Value.Content {
			if t, ok := c.(*types.ContentBlockMemberText); ok {
				fmt.Println(t.Value)
			}
		}
	}
}
