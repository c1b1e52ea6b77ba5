package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       bool
		json          bool
		debugShown    bool
		infoShown     bool
	}{
		{level: "", format: "", json: true, infoShown: true},
		{level: "debug", format: "json", json: true, debugShown: true, infoShown: true},
		{level: "warn", format: "text", json: false},
		{level: "error", format: "json", json: true},
		{level: "verbose", format: "json", wantErr: true},
		{level: "info", format: "xml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(&buf, tt.level, tt.format)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("dbg")
			if got := strings.Contains(buf.String(), "dbg"); got != tt.debugShown {
				t.Errorf("debug shown = %v, want %v", got, tt.debugShown)
			}
			buf.Reset()
			l.Info("inf", "k", "v")
			if got := strings.Contains(buf.String(), "inf"); got != tt.infoShown {
				t.Errorf("info shown = %v, want %v", got, tt.infoShown)
			}
			buf.Reset()
			l.Error("boom", "k", "v")
			line := buf.String()
			var m map[string]any
			isJSON := json.Unmarshal([]byte(line), &m) == nil
			if isJSON != tt.json {
				t.Errorf("json = %v, want %v: %q", isJSON, tt.json, line)
			}
			if !strings.Contains(line, "boom") {
				t.Errorf("error record missing: %q", line)
			}
		})
	}
}

func TestRequestIDHandler(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"with id", WithRequestID(context.Background(), "abc-123"), `"request_id":"abc-123"`},
		{"without id", context.Background(), ""},
		{"empty id", WithRequestID(context.Background(), ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(RequestIDHandler(slog.NewJSONHandler(&buf, nil))).With("component", "extproc")
			log.InfoContext(tt.ctx, "line", "k", "v")
			out := buf.String()
			if tt.want != "" && !strings.Contains(out, tt.want) {
				t.Errorf("got %s, want %s", out, tt.want)
			}
			if tt.want == "" && strings.Contains(out, "request_id") {
				t.Errorf("got %s, want no request_id", out)
			}
			if !strings.Contains(out, `"component":"extproc"`) {
				t.Errorf("With attributes lost: %s", out)
			}
		})
	}
	// Wrapping twice adds the id once.
	var buf bytes.Buffer
	h := RequestIDHandler(RequestIDHandler(slog.NewJSONHandler(&buf, nil)))
	slog.New(h).InfoContext(WithRequestID(context.Background(), "x"), "line")
	if n := strings.Count(buf.String(), "request_id"); n != 1 {
		t.Errorf("%d request_id attributes: %s", n, buf.String())
	}
}
