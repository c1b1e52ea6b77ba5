// Call Bedrock through tenantgate with the Vercel AI SDK (ai +
// @ai-sdk/amazon-bedrock): baseURL is tenantgate, apiKey the bearer token
// (a Supabase access token or a team's pk_…:sk_… API key), headers select a
// team account. The SDK uses Node's fetch, which trusts a private CA given
// in NODE_EXTRA_CA_CERTS (read when node starts).
//
//   TENANTGATE_URL=https://llm.example.com \
//   AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN" \
//   ACCOUNT_ID=<team account uuid, optional> \
//   NODE_EXTRA_CA_CERTS=/path/to/ca.crt \
//   node examples/clients/js/vercel_ai.mjs
import { pathToFileURL } from "node:url";

import { createAmazonBedrock } from "@ai-sdk/amazon-bedrock";
import { generateText, streamText } from "ai";

export const MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0";

// makeModel returns a language model calling tenantgate at baseURL.
export function makeModel({ baseURL, token, accountId, modelId = MODEL_ID }) {
  const bedrock = createAmazonBedrock({
    region: "us-east-1", // signing default only; tenantgate picks the tenant's region
    baseURL,
    apiKey: token,
    headers: accountId ? { "x-account-id": accountId } : undefined,
  });
  return bedrock(modelId);
}

export async function ask(model, prompt) {
  const { text } = await generateText({ model, prompt, maxRetries: 0 });
  return text;
}

export async function* askStream(model, prompt) {
  const result = streamText({ model, prompt, maxRetries: 0 });
  yield* result.textStream;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const model = makeModel({
    baseURL: process.env.TENANTGATE_URL,
    token: process.env.AWS_BEARER_TOKEN_BEDROCK,
    accountId: process.env.ACCOUNT_ID,
  });
  console.log(await ask(model, "Say hello in one word."));
}
