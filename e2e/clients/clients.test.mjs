// The JavaScript recipes of examples/clients/js through Envoy: the AWS SDK
// for JavaScript v3 over HTTP/2 (its default handler, which needs ALPN) and
// HTTP/1.1, and the Vercel AI SDK. Run by the Go test e2e TestClients
// (node --test) with TG_E2E_* set; run alone, every test skips.
import assert from "node:assert/strict";
import { appendFileSync, readFileSync } from "node:fs";
import { connect } from "node:tls";
import { test } from "node:test";

import { converse, converseStream, makeClient } from "../../examples/clients/js/bedrock_runtime.mjs";
import { ask, askStream, makeModel } from "../../examples/clients/js/vercel_ai.mjs";

const names = ["ENDPOINT", "CA_BUNDLE", "TOKEN_ALICE", "TOKEN_BOB", "TOKEN_CAROL", "API_KEY", "BAD_API_KEY",
  "ACME_ACCOUNT", "FAKE_ADMIN", "MODEL", "DENIED_MODEL", "REPORT"];
const missing = names.filter((n) => !process.env["TG_E2E_" + n]);
const skip = missing.length ? "stack not running (set by go test ./e2e): missing " + missing.join(", ") : false;
const e = Object.fromEntries(names.map((n) => [n.toLowerCase(), process.env["TG_E2E_" + n]]));

const ACME_ROLE = "arn:aws:sts::111122223333:assumed-role/AcmeBedrockAccess/";
const PLATFORM = "arn:aws:iam::999988887777:user/tenantgate-platform";

async function records() {
  const resp = await fetch(e.fake_admin + "/_fake/records");
  assert.equal(resp.status, 200);
  return resp.json();
}

// upstream runs fn and returns the single request it caused at the fake
// Bedrock (checking no caller credential reached it) and fn's result.
async function upstream(fn) {
  const n = (await records()).length;
  const out = await fn();
  const recs = (await records()).slice(n);
  assert.equal(recs.length, 1, `want one upstream request, got ${recs.length}`);
  const [rec] = recs;
  assert.equal(rec.status, 200);
  assert.equal(rec.bearer_authorization, false, "caller's bearer token reached AWS");
  assert.equal(rec.api_key_header, false, "caller's API key reached AWS");
  return { rec, out };
}

function assertFree(rec) {
  assert.equal(rec.region, "us-east-1");
  assert.equal(rec.principal_arn, PLATFORM);
}

function assertAcme(rec) {
  assert.equal(rec.region, "eu-west-1");
  assert.ok(rec.principal_arn.startsWith(ACME_ROLE), rec.principal_arn);
}

async function collect(gen) {
  const parts = [];
  for await (const p of gen) parts.push(p);
  return parts;
}

function withClient(opts, fn) {
  return async () => {
    const client = makeClient({ endpoint: e.endpoint, caFile: e.ca_bundle, ...opts });
    try {
      await fn(client);
    } finally {
      client.destroy();
    }
  };
}

// Node's HTTP/2 client sends the h2 preface whatever ALPN says; this checks
// that Envoy selects h2 in the handshake, as stricter HTTP/2 clients need.
test("Envoy selects h2 by ALPN for a Node TLS client", { skip }, async () => {
  const url = new URL(e.endpoint);
  const alpn = (protocols) => new Promise((resolve, reject) => {
    const sock = connect({ host: url.hostname, port: Number(url.port), ca: readFileSync(e.ca_bundle), ALPNProtocols: protocols, servername: "localhost" }, () => {
      resolve(sock.alpnProtocol);
      sock.end();
    });
    sock.on("error", reject);
  });
  assert.equal(await alpn(["h2", "http/1.1"]), "h2");
  assert.equal(await alpn(["http/1.1"]), "http/1.1");
});

test("JS SDK v3 over HTTP/2: free user Converse and ConverseStream", { skip },
  withClient({ get token() { return e.token_bob; } }, async (client) => {
    const a = await upstream(() => converse(client, "Hello", e.model));
    assertFree(a.rec);
    assert.equal(a.rec.operation, "Converse");
    assert.ok(a.out.includes(a.rec.principal_arn));
    const b = await upstream(() => collect(converseStream(client, "Hello", e.model)));
    assertFree(b.rec);
    assert.equal(b.rec.operation, "ConverseStream");
    assert.ok(b.out.length >= 2, "events were not streamed");
    assert.ok(b.out.join("").includes(b.rec.principal_arn));
  }));

test("JS SDK v3 over HTTP/2: team via API key as bearer, Converse and ConverseStream", { skip },
  withClient({ get token() { return e.api_key; } }, async (client) => {
    const a = await upstream(() => converse(client, "Hello", e.model));
    assertAcme(a.rec);
    assert.ok(a.out.includes(a.rec.principal_arn));
    const b = await upstream(() => collect(converseStream(client, "Hello", e.model)));
    assertAcme(b.rec);
    assert.equal(b.rec.operation, "ConverseStream");
    assert.ok(b.out.join("").includes(b.rec.principal_arn));
  }));

test("JS SDK v3 over HTTP/2: team member with the x-account-id middleware", { skip },
  withClient({ get token() { return e.token_alice; }, get accountId() { return e.acme_account; } }, async (client) => {
    const { rec, out } = await upstream(() => converse(client, "Hello", e.model));
    assertAcme(rec);
    assert.ok(out.includes(rec.principal_arn));
  }));

test("JS SDK v3 over HTTP/1.1 (https.Agent with the CA)", { skip },
  withClient({ get token() { return e.token_bob; }, http1: true }, async (client) => {
    const { rec } = await upstream(() => converse(client, "Hello", e.model));
    assertFree(rec);
  }));

test("JS SDK v3 denials: status and error.name", { skip }, async (t) => {
  const cases = {
    invalid_token: [{ token: e.token_bob?.slice(0, -8) + "AAAAAAAA" }, e.model, 401],
    invalid_api_key: [{ token: e.bad_api_key }, e.model, 401],
    model_not_allowed: [{ token: e.token_bob }, e.denied_model, 403],
    not_a_member: [{ token: e.token_carol, accountId: e.acme_account }, e.model, 403],
  };
  for (const [name, [opts, model, status]] of Object.entries(cases)) {
    await t.test(name, withClient(opts, async (client) => {
      const n = (await records()).length;
      const err = await converse(client, "Hello", model).then(() => null, (err) => err);
      assert.ok(err, "call succeeded");
      assert.equal(err.$metadata?.httpStatusCode, status, String(err));
      appendFileSync(e.report, JSON.stringify({ client: "js-sdk-v3", case: name, name: err.name }) + "\n");
      assert.deepEqual((await records()).slice(n), [], "a denied request reached AWS");
    }));
  }
});

test("Vercel AI SDK: free user generateText, team API key streamText", { skip }, async () => {
  const a = await upstream(() => ask(makeModel({ baseURL: e.endpoint, token: e.token_bob, modelId: e.model }), "Hello"));
  assertFree(a.rec);
  assert.ok(a.out.includes(a.rec.principal_arn));
  const b = await upstream(() => collect(askStream(makeModel({ baseURL: e.endpoint, token: e.api_key, modelId: e.model }), "Hello")));
  assertAcme(b.rec);
  assert.equal(b.rec.operation, "ConverseStream");
  assert.ok(b.out.join("").includes(b.rec.principal_arn));
});

test("Vercel AI SDK: team member with headers, and a denial", { skip }, async () => {
  const a = await upstream(() => ask(makeModel({ baseURL: e.endpoint, token: e.token_alice, accountId: e.acme_account, modelId: e.model }), "Hello"));
  assertAcme(a.rec);
  const n = (await records()).length;
  const err = await ask(makeModel({ baseURL: e.endpoint, token: e.token_bob, modelId: e.denied_model }), "Hello").then(() => null, (err) => err);
  assert.ok(err, "call succeeded");
  assert.equal(err.statusCode, 403, String(err));
  assert.deepEqual((await records()).slice(n), [], "a denied request reached AWS");
});
