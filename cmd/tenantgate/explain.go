package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tenantgate/tenantgate/internal/app"
)

func explain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var req app.ExplainRequest
	var asJSON *bool
	cfg, err := loadConfig("explain", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&req.Token, "token", "", "bearer token or API key (pk_...:sk_...) of the caller (required; never printed)")
		fs.StringVar(&req.Account, "account", "", "account id sent as x-account-id (default: the caller's personal account)")
		fs.StringVar(&req.Path, "path", "", "request path, e.g. /model/anthropic.claude-3-haiku-20240307-v1:0/invoke (required)")
		fs.StringVar(&req.Method, "method", "POST", "HTTP method")
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if req.Token == "" || req.Path == "" {
		return fmt.Errorf("%w: explain needs --token and --path", errUsage)
	}
	e, err := app.Explain(ctx, cfg, app.Options{Getenv: getenv}, req)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, e)
	}
	return printExplanation(stdout, e)
}

func printExplanation(w io.Writer, e app.Explanation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	a := e.Authz
	row("request", e.Method+" "+e.Path)
	row("credential", a.Credential)
	row("issuer", a.Issuer)
	key := a.APIKeyID
	if key == "" {
		key = e.JWTKeyID
	}
	row("key", key)
	row("user", a.Identity.UserID)
	row("account", a.Identity.AccountID)
	row("membership", a.Identity.Role)
	row("tier", a.Identity.Tier)
	row("enterprise", fmt.Sprint(a.Identity.Enterprise))
	row("model", a.Model)
	if a.Rule != nil {
		src := "plans.models." + a.Identity.Tier
		if a.Rule.Default {
			src = "plans.default_models"
		}
		row("plan rule", fmt.Sprintf("%q (%s)", a.Rule.Glob, src))
	} else {
		row("plan rule", "")
	}
	row("ext_authz", verdict(a.Allowed, a.Status, a.Code, a.Message))
	if p := e.Proc; p != nil {
		route := "-"
		if p.RoleARN != "" {
			route = fmt.Sprintf("%s (AWS account %s, enabled=%t)", p.RoleARN, p.RoleAccountID, p.RouteEnabled)
		}
		if p.Fallback != "" {
			route += " [" + p.Fallback + "]"
		}
		row("operation", p.Operation)
		row("route", strings.TrimPrefix(route, "- "))
		row("identity", p.Kind)
		row("region", p.Region)
		row("aws host", p.Host)
		if p.Path != e.Path {
			row("signed path", p.Path)
		}
		row("ext_proc", verdict(p.Allowed, p.Status, p.Code, p.Message))
	}
	row("result", verdict(e.Allowed, e.Status, e.Code, ""))
	return tw.Flush()
}

func verdict(ok bool, status int, code, msg string) string {
	if ok {
		return "allowed"
	}
	s := fmt.Sprintf("refused %d %s", status, code)
	if msg != "" {
		s += ": " + msg
	}
	return s
}
