// Package examples holds tenantgate's example configurations, SQL, AWS IAM
// policies and client snippets. Its tests load every example with the real
// config loader, parse every policy, run the tenant registration SQL against
// PostgreSQL and check the docker-compose wiring against envoy/envoy.yaml,
// so that the examples stay true to the code.
package examples
