package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/tenantgate/tenantgate/internal/stack"
)

// ghzVersion is the ghz the Makefile installs (go install ...@ghzVersion).
const ghzVersion = "v0.120.0"

// noopAuth answers every Check with OK and nothing else: the floor of a
// gRPC Check round trip.
type noopAuth struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopAuth) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}, nil
}

func findGhz() (string, error) {
	if p, err := exec.LookPath("ghz"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "ghz")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("ghz not found (go install github.com/bojand/ghz/cmd/ghz@%s)", ghzVersion)
}

// runGhz measures tenantgate's Check (a JWT caller, the request the wrk
// rows send) and the no-op Check server at every connection count, with
// the same transport as the Envoy link (mutual TLS or plaintext; a Unix
// socket link is measured over plaintext TCP).
func runGhz(ctx context.Context, o options, st *stack.Stack, token, path, dir string) (string, error) {
	bin, err := findGhz()
	if err != nil {
		return "", err
	}
	protoset := filepath.Join(dir, "auth.protoset")
	if err := writeProtoset(protoset, authv3.File_envoy_service_auth_v3_external_auth_proto); err != nil {
		return "", err
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: path, Host: "bench.local", Scheme: "http", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":method": "POST", ":path": path, ":authority": "bench.local", ":scheme": "http",
				"authorization": "Bearer " + token, "content-type": "application/json", "content-length": "1024",
				"x-request-id": "6c2e1d4a-5f0b-4a57-9a1e-0c6f1f5f9b21",
			},
		},
	}}}
	data, err := protojson.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("check request json: %w", err)
	}
	dataFile := filepath.Join(dir, "check.json")
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		return "", fmt.Errorf("write check request: %w", err)
	}

	mtls := st.TenantgateLink == stack.LinkMTLS
	tgAddr := st.TenantgateGRPC
	if st.TenantgateLink == stack.LinkUnix {
		return "", errors.New("the Check group needs a TCP link (run with -link mtls or -link plaintext)")
	}
	// Sanity: tenantgate must allow this request, so the rows time an allow.
	creds, err := st.TenantgateCreds(st.Certs.EnvoyClientCert, st.Certs.EnvoyClientKey)
	if err != nil {
		return "", err
	}
	if err := checkAllows(ctx, tgAddr, creds, req); err != nil {
		return "", fmt.Errorf("tenantgate Check: %w", err)
	}

	var sopts []grpc.ServerOption
	if mtls {
		cert, err := tls.LoadX509KeyPair(st.Certs.TenantgateCert, st.Certs.TenantgateKey)
		if err != nil {
			return "", fmt.Errorf("no-op server cert: %w", err)
		}
		caPEM, err := os.ReadFile(st.Certs.LinkCA)
		if err != nil {
			return "", fmt.Errorf("link CA: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		})))
	}
	noop := grpc.NewServer(sopts...)
	authv3.RegisterAuthorizationServer(noop, noopAuth{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("no-op listen: %w", err)
	}
	go func() { _ = noop.Serve(l) }()
	defer noop.Stop()

	d := o.duration
	var b strings.Builder
	fmt.Fprintf(&b, "ghz %s, one connection, %s per cell, %d interleaved rounds (median), transport: %s. "+
		"tenantgate answers a JWT caller (RS256 via JWKS, cached); the no-op server answers OK to anything.\n\n",
		ghzVersion, d, o.rounds, map[bool]string{true: "mutual TLS", false: "plaintext"}[mtls])
	b.WriteString("| c | server | req/s | p50 ms | p99 ms | req/s ÷ no-op |\n|---:|---|---:|---:|---:|---:|\n")
	type row struct{ rps, p50, p99 []float64 }
	for _, c := range o.conns {
		rows := map[string]*row{"tenantgate": {}, "no-op": {}}
		for r := 0; r < o.rounds; r++ {
			order := []string{"tenantgate", "no-op"}
			if r%2 == 1 {
				order = []string{"no-op", "tenantgate"}
			}
			for _, name := range order {
				addr := tgAddr
				if name == "no-op" {
					addr = l.Addr().String()
				}
				args := []string{"--protoset", protoset, "--call", "envoy.service.auth.v3.Authorization/Check",
					"-D", dataFile, "-c", strconv.Itoa(c), "-z", d.String(), "-O", "json", "--connections", "1"}
				if mtls {
					args = append(args, "--cacert", st.Certs.LinkCA, "--cert", st.Certs.EnvoyClientCert,
						"--key", st.Certs.EnvoyClientKey, "--cname", stack.TenantgateServerName)
				} else {
					args = append(args, "--insecure")
				}
				rps, p50, p99, err := ghzRun(ctx, bin, append(args, addr), c)
				if err != nil {
					return "", fmt.Errorf("ghz %s c=%d: %w", name, c, err)
				}
				fmt.Fprintf(os.Stderr, "ghz round %d %s c=%d: %.0f req/s p50 %.2f ms p99 %.2f ms\n", r+1, name, c, rps, p50, p99)
				rw := rows[name]
				rw.rps, rw.p50, rw.p99 = append(rw.rps, rps), append(rw.p50, p50), append(rw.p99, p99)
			}
		}
		noopRPS := medf(rows["no-op"].rps)
		for _, name := range []string{"no-op", "tenantgate"} {
			rw := rows[name]
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.2f | %.2f | %.2f× |\n", c, name, medf(rw.rps), medf(rw.p50), medf(rw.p99), medf(rw.rps)/noopRPS)
		}
	}
	return b.String(), nil
}

func medf(v []float64) float64 {
	ms := make([]metrics, len(v))
	for i, x := range v {
		ms[i].rps = x
	}
	return med(ms, func(m metrics) float64 { return m.rps })
}

// ghzRun runs ghz and returns req/s, p50 and p99 in ms. ghz ends a -z run
// by closing the connection under the calls still in flight, which it
// counts as Unavailable or Canceled: up to inflight of those are expected;
// any other non-OK call is an error.
func ghzRun(ctx context.Context, bin string, args []string, inflight int) (rps, p50, p99 float64, err error) {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %s", err, out)
	}
	var rep struct {
		Count   int64   `json:"count"`
		RPS     float64 `json:"rps"`
		Latency []struct {
			Percentage int     `json:"percentage"`
			Latency    float64 `json:"latency"` // ns
		} `json:"latencyDistribution"`
		Status map[string]int64 `json:"statusCodeDistribution"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return 0, 0, 0, fmt.Errorf("ghz json: %w", err)
	}
	cut := int64(0)
	for code, n := range rep.Status {
		switch code {
		case "OK":
		case "Unavailable", "Canceled":
			cut += n
		default:
			return 0, 0, 0, fmt.Errorf("ghz saw %d calls ending %s", n, code)
		}
	}
	if cut > int64(inflight) {
		return 0, 0, 0, fmt.Errorf("ghz saw %d calls ending Unavailable/Canceled (more than the %d in flight at the end)", cut, inflight)
	}
	for _, l := range rep.Latency {
		switch l.Percentage {
		case 50:
			p50 = l.Latency / 1e6
		case 99:
			p99 = l.Latency / 1e6
		}
	}
	return rep.RPS, p50, p99, nil
}

func checkAllows(ctx context.Context, addr string, creds credentials.TransportCredentials, req *authv3.CheckRequest) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(cctx, req)
	if err != nil {
		return err
	}
	if code := codes.Code(resp.GetStatus().GetCode()); code != codes.OK {
		return fmt.Errorf("denied: %v %s", code, resp.GetStatus().GetMessage())
	}
	return nil
}

// writeProtoset writes fd and its imports as a FileDescriptorSet for ghz.
func writeProtoset(path string, fd protoreflect.FileDescriptor) error {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(fd)
	b, err := proto.Marshal(set)
	if err != nil {
		return fmt.Errorf("protoset: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write protoset: %w", err)
	}
	return nil
}
