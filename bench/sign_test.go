package bench

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/internal/sigv4sign"
)

var bodySizes = []struct {
	name string
	n    int
}{
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
}

func signRequest(payloadHash string) sigv4sign.Request {
	return sigv4sign.Request{
		Method: "POST",
		Host:   "bedrock-runtime.eu-west-1.amazonaws.com",
		Path:   benchPath,
		Header: map[string][]string{
			"content-type": {"application/json"},
			"accept":       {"application/json"},
			"user-agent":   {"bench"},
		},
		PayloadHash: payloadHash,
	}
}

var tenantCreds = aws.Credentials{
	AccessKeyID: "ASIABENCHBENCHBENCH", SecretAccessKey: "bench-secret-access-key",
	SessionToken: "bench-session-token", CanExpire: true, Expires: time.Now().Add(time.Hour),
}

// BenchmarkSign measures re-signing a Bedrock request: the signature alone
// over a precomputed body hash (baseline), the body's SHA-256 alone, and
// hash + signature, for 1 KiB, 64 KiB and 1 MiB bodies.
func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	s := sigv4sign.New("bedrock")
	at := time.Now()
	b.Run("sign_only_precomputed_hash", func(b *testing.B) {
		req := signRequest(sigv4sign.PayloadHash([]byte("{}")))
		if _, err := s.Sign(ctx, tenantCreds, "eu-west-1", req, at); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Sign(ctx, tenantCreds, "eu-west-1", req, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sz := range bodySizes {
		body := make([]byte, sz.n)
		if _, err := rand.Read(body); err != nil {
			b.Fatal(err)
		}
		b.Run("hash_only_"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if len(sigv4sign.PayloadHash(body)) != 64 {
					b.Fatal("bad hash")
				}
			}
		})
		b.Run("hash+sign_"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				res, err := s.Sign(ctx, tenantCreds, "eu-west-1", signRequest(sigv4sign.PayloadHash(body)), at)
				if err != nil || res.Authorization == "" {
					b.Fatalf("sign: %v", err)
				}
			}
		})
	}
}
