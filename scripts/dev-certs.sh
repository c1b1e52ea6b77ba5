#!/usr/bin/env bash
# dev-certs.sh writes throwaway TLS files for Envoy's listeners (the names
# envoy/envoy.yaml reads from /etc/envoy/tls): a local CA (also used as the
# mesh client CA), a server certificate for localhost, and one client
# certificate with a SPIFFE URI SAN for the mTLS mesh listener, and the
# certificate of the fake Bedrock runtime for docker compose's "fake" profile.
# For the Envoy -> tenantgate link (mutual TLS, see server.grpc_tls) it makes a
# separate CA that signs nothing else (tenantgate-ca.crt; its key is deleted),
# tenantgate's server certificate for the name "tenantgate"
# (tenantgate-server.{crt,key}) and Envoy's client certificate with the URI
# SAN spiffe://tenantgate.local/envoy (tenantgate-client.{crt,key}).
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

# The Envoy -> tenantgate link: its own CA, so that no mesh client
# certificate (client.crt above) is accepted by tenantgate's gRPC port.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=tenantgate link CA" -keyout tenantgate-ca.key -out tenantgate-ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=tenantgate" -keyout tenantgate-server.key -out tenantgate-server.csr 2>/dev/null
printf 'subjectAltName=DNS:tenantgate,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >tenantgate-server.ext
openssl x509 -req -in tenantgate-server.csr -CA tenantgate-ca.crt -CAkey tenantgate-ca.key -CAcreateserial -days 30 \
	-extfile tenantgate-server.ext -out tenantgate-server.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=envoy" -keyout tenantgate-client.key -out tenantgate-client.csr 2>/dev/null
printf 'subjectAltName=URI:spiffe://tenantgate.local/envoy\nextendedKeyUsage=clientAuth\n' >tenantgate-client.ext
openssl x509 -req -in tenantgate-client.csr -CA tenantgate-ca.crt -CAkey tenantgate-ca.key -CAcreateserial -days 30 \
	-extfile tenantgate-client.ext -out tenantgate-client.crt 2>/dev/null

rm -f ./*.csr ./*.ext ./*.srl tenantgate-ca.key
chmod 0644 ./*.crt ./*.key # the Envoy and tenantgate images run as non-root users
echo "dev-certs: wrote $(pwd)/{ca,mesh-ca,server,client,fake-bedrock,tenantgate-ca,tenantgate-server,tenantgate-client}.{crt,key}"
