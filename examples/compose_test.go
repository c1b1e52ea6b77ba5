package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Expose      []string          `yaml:"expose"`
		Profiles    []string          `yaml:"profiles"`
		Networks    map[string]struct {
			Aliases []string `yaml:"aliases"`
		} `yaml:"networks"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

type socketAddress struct {
	Address   string `yaml:"address"`
	PortValue int    `yaml:"port_value"`
}

type envoyBootstrap struct {
	StaticResources struct {
		Listeners []struct {
			Name    string `yaml:"name"`
			Address struct {
				SocketAddress socketAddress `yaml:"socket_address"`
			} `yaml:"address"`
		} `yaml:"listeners"`
		Clusters []struct {
			Name           string `yaml:"name"`
			LoadAssignment struct {
				Endpoints []struct {
					LbEndpoints []struct {
						Endpoint struct {
							Address struct {
								SocketAddress socketAddress `yaml:"socket_address"`
							} `yaml:"address"`
						} `yaml:"endpoint"`
					} `yaml:"lb_endpoints"`
				} `yaml:"endpoints"`
			} `yaml:"load_assignment"`
		} `yaml:"clusters"`
	} `yaml:"static_resources"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestComposeParsesWithPyYAML checks docker-compose.yml with the same YAML
// parser family docker compose uses for validation (yaml.safe_load).
func TestComposeParsesWithPyYAML(t *testing.T) {
	py := python(t)
	out, err := exec.Command(py, "-c", `import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert isinstance(d, dict) and isinstance(d.get("services"), dict), "no services mapping"
print(",".join(sorted(d["services"])))`, "../docker-compose.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("yaml.safe_load(docker-compose.yml): %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), ",")
	for _, want := range []string{"envoy", "fakeaws", "migrate", "postgres", "tenantgate"} {
		if !slices.Contains(got, want) {
			t.Errorf("PyYAML sees services %v; missing %s", got, want)
		}
	}
}

func TestComposeMatchesEnvoyBootstrap(t *testing.T) {
	var c composeFile
	readYAML(t, "../docker-compose.yml", &c)
	var e envoyBootstrap
	readYAML(t, "../envoy/envoy.yaml", &e)

	svc := c.Services
	if got := svc["envoy"].Image; got != "envoyproxy/envoy:v1.40.0" {
		t.Errorf("envoy image = %q, want envoyproxy/envoy:v1.40.0", got)
	}
	if got := svc["postgres"].Image; got != "postgres:15" {
		t.Errorf("postgres image = %q, want postgres:15", got)
	}
	for _, name := range []string{"tenantgate", "migrate", "fakeaws"} {
		if svc[name].Build == nil {
			t.Errorf("service %s is not built from this repository", name)
		}
	}
	if m := svc["migrate"].Command; len(m) == 0 || m[0] != "migrate" || !slices.Contains(m, "--dev") || !slices.Contains(m, "--database-url") {
		t.Errorf("migrate command = %v, want migrate --database-url URL --dev", m)
	}
	if d := svc["tenantgate"].DependsOn["migrate"].Condition; d != "service_completed_successfully" {
		t.Errorf("tenantgate depends_on migrate condition = %q", d)
	}
	if d := svc["migrate"].DependsOn["postgres"].Condition; d != "service_healthy" {
		t.Errorf("migrate depends_on postgres condition = %q", d)
	}
	if cmd := svc["tenantgate"].Command; len(cmd) < 3 || cmd[0] != "serve" || cmd[1] != "--config" {
		t.Errorf("tenantgate command = %v", cmd)
	}

	// Every bind-mounted repository file exists, and the config mounted into
	// tenantgate is one the examples tests load.
	for name, s := range svc {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
	if !slices.ContainsFunc(svc["envoy"].Volumes, func(v string) bool { return strings.HasPrefix(v, "./envoy/envoy.yaml:") }) {
		t.Error("envoy does not mount ./envoy/envoy.yaml")
	}

	// The tenantgate cluster points at the compose service and its gRPC port.
	var found bool
	for _, cl := range e.StaticResources.Clusters {
		if cl.Name != "tenantgate" {
			continue
		}
		for _, ep := range cl.LoadAssignment.Endpoints {
			for _, lb := range ep.LbEndpoints {
				sa := lb.Endpoint.Address.SocketAddress
				found = true
				if _, ok := svc[sa.Address]; !ok {
					t.Errorf("envoy cluster tenantgate targets %q, which is not a compose service", sa.Address)
				}
				if !slices.Contains(svc[sa.Address].Expose, strconv.Itoa(sa.PortValue)) {
					t.Errorf("compose service %s does not expose %d", sa.Address, sa.PortValue)
				}
			}
		}
	}
	if !found {
		t.Error("envoy/envoy.yaml has no tenantgate cluster endpoint")
	}
	// Every Bedrock cluster is named bedrock_<region> (bedrock_control_<region>)
	// for the host it targets, and the fake Bedrock answers for that host.
	aliases := svc["fakeaws"].Networks["default"].Aliases
	nBedrock := 0
	for _, cl := range e.StaticResources.Clusters {
		if !strings.HasPrefix(cl.Name, "bedrock_") {
			continue
		}
		nBedrock++
		region := strings.ReplaceAll(strings.TrimPrefix(cl.Name, "bedrock_"), "_", "-")
		host := "bedrock-runtime." + region + ".amazonaws.com"
		if r, ok := strings.CutPrefix(cl.Name, "bedrock_control_"); ok {
			host = "bedrock." + strings.ReplaceAll(r, "_", "-") + ".amazonaws.com"
		}
		for _, ep := range cl.LoadAssignment.Endpoints {
			for _, lb := range ep.LbEndpoints {
				a := lb.Endpoint.Address.SocketAddress.Address
				if a != host {
					t.Errorf("cluster %s targets %s", cl.Name, a)
				}
				if !slices.Contains(aliases, a) {
					t.Errorf("fakeaws has no network alias %s for cluster %s", a, cl.Name)
				}
			}
		}
	}
	if nBedrock == 0 {
		t.Error("envoy/envoy.yaml has no bedrock_<region> clusters")
	}
	// Every Envoy listener port is published by the envoy service.
	if len(e.StaticResources.Listeners) == 0 {
		t.Fatal("envoy/envoy.yaml has no listeners")
	}
	for _, l := range e.StaticResources.Listeners {
		port := strconv.Itoa(l.Address.SocketAddress.PortValue)
		if !slices.ContainsFunc(svc["envoy"].Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
			t.Errorf("envoy listener %s (:%s) is not published by the compose envoy service", l.Name, port)
		}
	}
}

// The fake-AWS override parses, only touches services of the base file, and
// the fakeaws flags it relies on exist.
func TestComposeFakeOverride(t *testing.T) {
	var base, over composeFile
	readYAML(t, "../docker-compose.yml", &base)
	readYAML(t, "docker-compose.fake.yml", &over)
	if len(over.Services) == 0 {
		t.Fatal("override defines no services")
	}
	for name := range over.Services {
		if _, ok := base.Services[name]; !ok {
			t.Errorf("override names service %s, which docker-compose.yml lacks", name)
		}
	}
	if got := over.Services["tenantgate"].Environment["AWS_ENDPOINT_URL_STS"]; got != "http://fakeaws:4566" {
		t.Errorf("tenantgate STS endpoint = %q", got)
	}
	if !slices.Contains(base.Services["fakeaws"].Command, "0.0.0.0:4566") {
		t.Errorf("fakeaws does not listen for STS on :4566: %v", base.Services["fakeaws"].Command)
	}
	src, err := os.ReadFile("../cmd/fakeaws/main.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range base.Services["fakeaws"].Command {
		if name, ok := strings.CutPrefix(arg, "-"); ok {
			if !strings.Contains(string(src), `"`+name+`"`) {
				t.Errorf("cmd/fakeaws has no flag -%s", name)
			}
		}
	}
}
