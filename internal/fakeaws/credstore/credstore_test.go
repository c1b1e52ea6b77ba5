package credstore

import (
	"context"
	"regexp"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := New(func() time.Time { return now })
	s.AddStatic("AKIAPLATFORMEXAMPLE01", "secret", "arn:aws:iam::111122223333:user/platform")
	c, ok := s.LookupCredential(context.Background(), "AKIAPLATFORMEXAMPLE01")
	if !ok || c.Temporary() || c.SecretAccessKey != "secret" {
		t.Fatalf("static lookup = %+v, %v", c, ok)
	}
	a := s.IssueTemporary("arn:aws:sts::1:assumed-role/R/s", 15*time.Minute)
	b := s.IssueTemporary("arn:aws:sts::1:assumed-role/R/s", 15*time.Minute)
	if a.AccessKeyID == b.AccessKeyID || a.SessionToken == b.SessionToken || a.SecretAccessKey == b.SecretAccessKey {
		t.Fatal("temporary credentials are not distinct")
	}
	if !regexp.MustCompile(`^ASIA[A-Z2-7]{16}$`).MatchString(a.AccessKeyID) {
		t.Fatalf("access key id %q", a.AccessKeyID)
	}
	if !a.Expiration.Equal(now.Add(15 * time.Minute)) {
		t.Fatalf("expiration %v", a.Expiration)
	}
	got, ok := s.LookupCredential(context.Background(), a.AccessKeyID)
	if !ok || got.SessionToken != a.SessionToken {
		t.Fatal("issued credential not found")
	}
	if !s.Expire(a.AccessKeyID) || s.Expire("AKIAPLATFORMEXAMPLE01") || s.Expire("nope") {
		t.Fatal("Expire results wrong")
	}
	got, _ = s.LookupCredential(context.Background(), a.AccessKeyID)
	if got.Expiration.After(now) {
		t.Fatal("not expired")
	}
	if _, ok := s.LookupCredential(context.Background(), "AKIAUNKNOWN"); ok {
		t.Fatal("unknown key found")
	}
	if id := RequestID(); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("request id %q", id)
	}
}
