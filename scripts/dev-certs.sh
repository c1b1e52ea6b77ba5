#!/usr/bin/env bash
# dev-certs.sh writes throwaway TLS files for Envoy's listeners (the names
# envoy/envoy.yaml reads from /etc/envoy/tls): a local CA (also used as the
# mesh client CA), a server certificate for localhost, and one client
# certificate with a SPIFFE URI SAN for the mTLS mesh listener, and the
# certificate of the fake Bedrock runtime for docker compose's "fake" profile.
# LOCAL USE ONLY. Usage: scripts/dev-certs.sh [DIR] (default .tmp/tls)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${1:-.tmp/tls}
mkdir -p "$dir"
cd "$dir"
command -v openssl >/dev/null || { echo "dev-certs: openssl not found" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=tenantgate local CA" -keyout ca.key -out ca.crt 2>/dev/null
cp ca.crt mesh-ca.crt

openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:envoy,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
	-extfile server.ext -out server.crt 2>/dev/null

openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=worker" -keyout client.key -out client.csr 2>/dev/null
printf 'subjectAltName=URI:spiffe://cluster.local/ns/agents/sa/worker\nextendedKeyUsage=clientAuth\n' >client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
	-extfile client.ext -out client.crt 2>/dev/null

# The fake Bedrock runtime (cmd/fakeaws) answers for every regional host.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=bedrock-runtime.us-east-1.amazonaws.com" -keyout fake-bedrock.key -out fake-bedrock.csr 2>/dev/null
sans=""
for r in us-east-1 us-west-2 eu-west-1 eu-central-1 ap-northeast-1 ap-southeast-2; do
	sans="${sans:+$sans,}DNS:bedrock-runtime.$r.amazonaws.com,DNS:bedrock.$r.amazonaws.com"
done
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >fake-bedrock.ext
openssl x509 -req -in fake-bedrock.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
	-extfile fake-bedrock.ext -out fake-bedrock.crt 2>/dev/null

rm -f ./*.csr ./*.ext ca.srl
chmod 0644 ./*.crt ./*.key # the Envoy image runs as a non-root user
echo "dev-certs: wrote $(pwd)/{ca,mesh-ca,server,client,fake-bedrock}.{crt,key}"
