package sigv4verify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const suiteDir = "../../../../shared/aws-sig-v4-test-suite"

func suitePath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SIGV4_TEST_SUITE"), "/work/shared/aws-sig-v4-test-suite", suiteDir} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
	}
	t.Skip("aws-sig-v4-test-suite not found (set SIGV4_TEST_SUITE)")
	return ""
}

type vectorContext struct {
	Credentials struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		Token           string `json:"token"`
	} `json:"credentials"`
	Normalize bool      `json:"normalize"`
	Region    string    `json:"region"`
	Service   string    `json:"service"`
	Timestamp time.Time `json:"timestamp"`
}

type vector struct {
	name    string
	ctx     vectorContext
	req     Request
	creq    string
	sreqRaw string
}

// parseRawRequest parses the suite's textual HTTP requests. The request
// target is kept byte for byte (it may contain spaces and raw UTF-8);
// continuation lines are folded into the previous header with a space.
func parseRawRequest(t testing.TB, raw string) Request {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\n\n")
	sc := bufio.NewScanner(strings.NewReader(head))
	if !sc.Scan() {
		t.Fatalf("empty request")
	}
	line := sc.Text()
	method, rest, _ := strings.Cut(line, " ")
	i := strings.LastIndex(rest, " HTTP/")
	if i < 0 {
		t.Fatalf("bad request line %q", line)
	}
	target := rest[:i]
	path, query, _ := strings.Cut(target, "?")
	req := Request{Method: method, RawPath: path, RawQuery: query, Header: http.Header{}}
	var lastKey string
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			break
		}
		if (l[0] == ' ' || l[0] == '\t') && lastKey != "" {
			vals := req.Header[lastKey]
			vals[len(vals)-1] += " " + strings.TrimSpace(l)
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		lastKey = http.CanonicalHeaderKey(k)
		if lastKey == "Host" {
			req.Host = strings.TrimSpace(v)
		}
		req.Header[lastKey] = append(req.Header[lastKey], v)
	}
	if cl := req.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err != nil || n > len(body) {
			t.Fatalf("bad content-length %q for body of %d bytes", cl, len(body))
		}
		body = body[:n]
	} else {
		body = strings.TrimRight(body, "\n")
	}
	req.Body = []byte(body)
	return req
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	dir := suitePath(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(dir, e.Name())
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		var vc vectorContext
		if err := json.Unmarshal([]byte(read("context.json")), &vc); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		raw := read("header-signed-request.txt")
		out = append(out, vector{name: e.Name(), ctx: vc, req: parseRawRequest(t, raw), creq: read("header-canonical-request.txt"), sreqRaw: raw})
	}
	if len(out) < 30 {
		t.Fatalf("only %d vectors found in %s", len(out), dir)
	}
	return out
}

type staticCreds map[string]Credential

func (s staticCreds) LookupCredential(_ context.Context, id string) (Credential, bool) {
	c, ok := s[id]
	return c, ok
}

func vectorVerifier(v vector) *Verifier {
	return &Verifier{
		Service: v.ctx.Service,
		Credentials: staticCreds{v.ctx.Credentials.AccessKeyID: {
			AccessKeyID:     v.ctx.Credentials.AccessKeyID,
			SecretAccessKey: v.ctx.Credentials.SecretAccessKey,
			SessionToken:    v.ctx.Credentials.Token,
			PrincipalARN:    "arn:aws:iam::123456789012:user/example",
		}},
		Now:              func() time.Time { return v.ctx.Timestamp.Add(90 * time.Second) },
		DisableNormalize: !v.ctx.Normalize,
	}
}

func cloneReq(r Request) Request {
	c := r
	c.Header = r.Header.Clone()
	c.Body = append([]byte(nil), r.Body...)
	return c
}

func kindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func TestVectorsVerify(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			ver := vectorVerifier(v)
			res, err := ver.Verify(context.Background(), cloneReq(v.req), v.ctx.Region)
			if err != nil {
				var e *Error
				errors.As(err, &e)
				t.Fatalf("valid vector rejected: %v\ncanonical:\n%s\nwant:\n%s", err, e.CanonicalRequest, v.creq)
			}
			a, _ := ParseAuthorization(v.req.Header.Get("Authorization"))
			sum := payloadHashOf(v.req)
			if got := CanonicalRequest(v.req, a.SignedHeaders, sum, v.ctx.Normalize); got != v.creq {
				t.Fatalf("canonical request mismatch:\n got: %q\nwant: %q", got, v.creq)
			}
			if res.Credential.AccessKeyID != "AKIDEXAMPLE" || res.Authorization.Region != "us-east-1" || res.Authorization.Service != "service" {
				t.Fatalf("unexpected result %+v", res.Authorization)
			}
			if res.SessionTokenPresent != (v.req.Header.Get("X-Amz-Security-Token") != "") {
				t.Fatalf("SessionTokenPresent = %v", res.SessionTokenPresent)
			}
		})
	}
}

func payloadHashOf(r Request) string {
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		return h
	}
	return "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}

func TestVectorsMutationsRejected(t *testing.T) {
	for _, v := range loadVectors(t) {
		a, err := ParseAuthorization(v.req.Header.Get("Authorization"))
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		type mutation struct {
			name     string
			mutate   func(*Request, *Verifier) string // returns region
			wantKind Kind
		}
		muts := []mutation{
			{"signature", func(r *Request, _ *Verifier) string {
				sig := a.Signature
				flipped := string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", sig[10])+1)%16])
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sig, sig[:10]+flipped+sig[11:], 1))
				return v.ctx.Region
			}, KindSignatureMismatch},
			{"body", func(r *Request, _ *Verifier) string { r.Body = append(r.Body, 'x'); return v.ctx.Region }, KindSignatureMismatch},
			{"path", func(r *Request, _ *Verifier) string { r.RawPath += "x"; return v.ctx.Region }, KindSignatureMismatch},
			{"query", func(r *Request, _ *Verifier) string {
				if r.RawQuery == "" {
					r.RawQuery = "a=b"
				} else {
					r.RawQuery += "&z=1"
				}
				return v.ctx.Region
			}, KindSignatureMismatch},
			{"method", func(r *Request, _ *Verifier) string { r.Method = "PUT"; return v.ctx.Region }, KindSignatureMismatch},
			{"date-second", func(r *Request, _ *Verifier) string {
				r.Header.Set("X-Amz-Date", v.ctx.Timestamp.Add(time.Second).Format(TimeFormat))
				return v.ctx.Region
			}, KindSignatureMismatch},
			{"date-day", func(r *Request, ver *Verifier) string {
				d := v.ctx.Timestamp.Add(24 * time.Hour)
				r.Header.Set("X-Amz-Date", d.Format(TimeFormat))
				ver.Now = func() time.Time { return d }
				return v.ctx.Region
			}, KindSignatureMismatch},
			{"stale-clock", func(r *Request, ver *Verifier) string {
				ver.Now = func() time.Time { return v.ctx.Timestamp.Add(6 * time.Minute) }
				return v.ctx.Region
			}, KindSignatureExpired},
			{"future-date", func(r *Request, ver *Verifier) string {
				ver.Now = func() time.Time { return v.ctx.Timestamp.Add(-6 * time.Minute) }
				return v.ctx.Region
			}, KindSignatureExpired},
			{"region", func(r *Request, _ *Verifier) string { return "eu-west-1" }, KindSignatureMismatch},
			{"service", func(r *Request, ver *Verifier) string { ver.Service = "bedrock"; return v.ctx.Region }, KindSignatureMismatch},
			{"secret", func(r *Request, ver *Verifier) string {
				c := ver.Credentials.(staticCreds)["AKIDEXAMPLE"]
				c.SecretAccessKey += "x"
				ver.Credentials = staticCreds{"AKIDEXAMPLE": c}
				return v.ctx.Region
			}, KindSignatureMismatch},
			{"unknown-key", func(r *Request, ver *Verifier) string { ver.Credentials = staticCreds{}; return v.ctx.Region }, KindUnknownKey},
			{"no-authorization", func(r *Request, _ *Verifier) string { r.Header.Del("Authorization"); return v.ctx.Region }, KindMissingAuth},
		}
		// A signed but absent token header fails the signed-header check
		// first; an unsigned one fails the token check.
		missingTokenKind := KindInvalidToken
		for _, h := range a.SignedHeaders {
			if h == "x-amz-security-token" {
				missingTokenKind = KindSignatureMismatch
			}
		}
		if v.ctx.Credentials.Token != "" {
			muts = append(muts,
				mutation{"missing-token", func(r *Request, _ *Verifier) string { r.Header.Del("X-Amz-Security-Token"); return v.ctx.Region }, missingTokenKind},
				mutation{"wrong-token", func(r *Request, _ *Verifier) string {
					r.Header.Set("X-Amz-Security-Token", "x"+r.Header.Get("X-Amz-Security-Token"))
					return v.ctx.Region
				}, KindInvalidToken},
				mutation{"expired-token", func(r *Request, ver *Verifier) string {
					c := ver.Credentials.(staticCreds)["AKIDEXAMPLE"]
					c.Expiration = v.ctx.Timestamp
					ver.Credentials = staticCreds{"AKIDEXAMPLE": c}
					return v.ctx.Region
				}, KindExpiredToken},
			)
		}
		for _, h := range a.SignedHeaders {
			h := h
			switch h {
			case "host":
				muts = append(muts, mutation{"header-host", func(r *Request, _ *Verifier) string { r.Host = "evil.amazonaws.com"; return v.ctx.Region }, KindSignatureMismatch})
			case "x-amz-date", "x-amz-security-token":
			default:
				muts = append(muts, mutation{"header-" + h, func(r *Request, _ *Verifier) string {
					vals := r.Header.Values(h)
					r.Header.Set(h, vals[0]+"x")
					for _, x := range vals[1:] {
						r.Header.Add(h, x)
					}
					return v.ctx.Region
				}, KindSignatureMismatch})
				muts = append(muts, mutation{"drop-" + h, func(r *Request, _ *Verifier) string { r.Header.Del(h); return v.ctx.Region }, KindSignatureMismatch})
			}
		}
		for _, m := range muts {
			t.Run(v.name+"/"+m.name, func(t *testing.T) {
				r := cloneReq(v.req)
				ver := vectorVerifier(v)
				region := m.mutate(&r, ver)
				_, err := ver.Verify(context.Background(), r, region)
				if err == nil {
					t.Fatalf("mutated request accepted")
				}
				if got := kindOf(err); got != m.wantKind {
					t.Fatalf("kind = %v, want %v (%v)", got, m.wantKind, err)
				}
			})
		}
	}
}
