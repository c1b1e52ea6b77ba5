// Package e2e holds tenantgate's end-to-end tests: the whole stack
// (internal/stack: real Envoy with the shipped bootstrap, the tenantgate
// binary, fake AWS) exercised with aws-sdk-go-v2's bedrockruntime client, and
// the Python suite in e2e/python (boto3, LiteLLM) run against the same stack.
package e2e
