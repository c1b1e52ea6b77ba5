// Package bench owns tenantgate's performance measurements: Go benchmarks
// of the ext_authz decision, tenant credentials, SigV4 signing and (when the
// local stack is available) end-to-end latency through Envoy. run.sh runs
// them and prints one table per group, each row with a ratio against the
// group's baseline row. Nothing here asserts on timings.
package bench
