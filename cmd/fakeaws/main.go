// Command fakeaws serves local fakes of AWS STS (AssumeRole) and the Bedrock
// runtime that verify SigV4 like AWS, plus an admin API with request records
// and fault injection. It only wires internal/fakeaws; see
// internal/fakeaws/testdata/fakeaws.yaml for an example configuration.
// All credentials it knows are fake.
//
//	fakeaws [-config file.yaml] [-sts-listen addr] [-bedrock-listen addr]
//	        [-admin-listen addr] [-tls-cert pem -tls-key pem]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/fakeaws"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakeaws:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fakeaws", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config (default: built-in demo config)")
	stsListen := fs.String("sts-listen", "", "STS listen address (overrides config)")
	brListen := fs.String("bedrock-listen", "", "Bedrock runtime listen address (overrides config)")
	adminListen := fs.String("admin-listen", "", "admin listen address (overrides config)")
	cert := fs.String("tls-cert", "", "Bedrock TLS certificate PEM (overrides config)")
	key := fs.String("tls-key", "", "Bedrock TLS key PEM (overrides config)")
	regions := fs.String("regions", "", "comma-separated Bedrock regions (overrides config)")
	delay := fs.Duration("stream-delay", 0, "delay between streamed events (overrides config)")
	logLevel := fs.String("log-level", "info", "debug|info|warn|error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	cfg := fakeaws.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = fakeaws.Load(*cfgPath); err != nil {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.STSListen, *stsListen)
	set(&cfg.BedrockListen, *brListen)
	set(&cfg.AdminListen, *adminListen)
	set(&cfg.BedrockTLSCert, *cert)
	set(&cfg.BedrockTLSKey, *key)
	if *regions != "" {
		cfg.Regions = strings.Split(*regions, ",")
	}
	if *delay != 0 {
		cfg.StreamDelay = *delay
	}
	f, err := fakeaws.New(cfg, logger)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	type server struct {
		name, addr string
		h          http.Handler
		tls        bool
	}
	servers := []server{
		{"sts", cfg.STSListen, f.STS, false},
		{"bedrock", cfg.BedrockListen, f.Bedrock, cfg.BedrockTLSCert != ""},
		{"admin", cfg.AdminListen, f.AdminHandler(), false},
	}
	errc := make(chan error, len(servers))
	var https []*http.Server
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("%s listen %s: %w", s.name, s.addr, err)
		}
		hs := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		https = append(https, hs)
		scheme := "http"
		if s.tls {
			scheme = "https"
		}
		fmt.Printf("fakeaws %-7s %s://%s\n", s.name, scheme, ln.Addr())
		go func(s server) {
			var err error
			if s.tls {
				err = hs.ServeTLS(ln, cfg.BedrockTLSCert, cfg.BedrockTLSKey)
			} else {
				err = hs.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}(s)
	}
	fmt.Printf("fakeaws bedrock regions %s (Host %s)\n", strings.Join(cfg.Regions, ","), f.Bedrock.Host("<region>"))
	fmt.Printf("fakeaws platform key %s (%s) [FAKE]\n", cfg.Platform.AccessKeyID, cfg.Platform.PrincipalARN)
	for _, r := range cfg.Roles {
		fmt.Printf("fakeaws role %s external_id=%q\n", r.ARN, r.ExternalID)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, hs := range https {
		_ = hs.Shutdown(shutdownCtx)
	}
	return runErr
}
