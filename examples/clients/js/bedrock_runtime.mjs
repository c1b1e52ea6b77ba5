// Call Bedrock through tenantgate with the AWS SDK for JavaScript v3
// (@aws-sdk/client-bedrock-runtime). The client's default request handler
// speaks HTTP/2 (Envoy offers h2 by ALPN); a private CA is passed to it in
// nodeHttp2ConnectOptions. The bearer token is a Supabase access token or a
// team's platform API key (pk_…:sk_…); a team account is selected with the
// x-account-id header, added by a middleware.
//
//   TENANTGATE_URL=https://llm.example.com \
//   AWS_BEARER_TOKEN_BEDROCK="$SUPABASE_ACCESS_TOKEN" \
//   ACCOUNT_ID=<team account uuid, optional> \
//   CA_BUNDLE=/path/to/ca.crt \
//   node examples/clients/js/bedrock_runtime.mjs
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { pathToFileURL } from "node:url";

import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { NodeHttp2Handler, NodeHttpHandler } from "@smithy/node-http-handler";

export const MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0";

// makeClient returns a BedrockRuntimeClient for tenantgate at endpoint.
// http1: true uses the HTTP/1.1 handler (an https.Agent carries the CA).
export function makeClient({ endpoint, token, accountId, caFile, http1 = false }) {
  const ca = caFile ? readFileSync(caFile) : undefined;
  const requestHandler = http1
    ? new NodeHttpHandler({ httpsAgent: new Agent({ ca, keepAlive: true }) })
    : new NodeHttp2Handler({ disableConcurrentStreams: true, nodeHttp2ConnectOptions: ca ? { ca } : undefined });
  const client = new BedrockRuntimeClient({
    region: "us-east-1", // signing default only; tenantgate picks the tenant's region
    endpoint,
    token: { token },
    authSchemePreference: ["httpBearerAuth"],
    requestHandler,
    maxAttempts: 1,
  });
  if (accountId) {
    client.middlewareStack.add(
      (next) => async (args) => {
        args.request.headers["x-account-id"] = accountId;
        return next(args);
      },
      { step: "build", name: "tenantgateAccountId" },
    );
  }
  return client;
}

const messages = (text) => [{ role: "user", content: [{ text }] }];

// converse returns the answer text of one Converse call.
export async function converse(client, prompt, modelId = MODEL_ID) {
  const out = await client.send(new ConverseCommand({ modelId, messages: messages(prompt) }));
  return out.output.message.content[0].text;
}

// converseStream yields the text deltas of one ConverseStream call.
export async function* converseStream(client, prompt, modelId = MODEL_ID) {
  const out = await client.send(new ConverseStreamCommand({ modelId, messages: messages(prompt) }));
  for await (const event of out.stream) {
    if (event.contentBlockDelta?.delta?.text) {
      yield event.contentBlockDelta.delta.text;
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const client = makeClient({
    endpoint: process.env.TENANTGATE_URL,
    token: process.env.AWS_BEARER_TOKEN_BEDROCK,
    accountId: process.env.ACCOUNT_ID,
    caFile: process.env.CA_BUNDLE,
  });
  console.log(await converse(client, "Say hello in one word."));
  for await (const text of converseStream(client, "Count to three.")) {
    process.stdout.write(text);
  }
  process.stdout.write("\n");
  client.destroy();
}
