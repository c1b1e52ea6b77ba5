// Package envoy owns the shipped Envoy bootstrap (envoy.yaml) that puts
// tenantgate's ext_authz and ext_proc in front of Amazon Bedrock, and the
// deployment recipes in README.md. The bootstrap is embedded so that tools
// and tests run exactly the shipped filter chain.
package envoy

import _ "embed"

// Bootstrap is envoy.yaml as shipped.
//
//go:embed envoy.yaml
var Bootstrap []byte

// Regions are the Bedrock regions the shipped bootstrap routes, each with a
// virtual host bedrock-runtime.<region>.amazonaws.com and a cluster
// bedrock_<region with underscores>, and for the control plane a virtual
// host bedrock.<region>.amazonaws.com and a cluster bedrock_control_<region>.
var Regions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2"}
