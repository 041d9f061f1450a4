// Package deploy holds the example deployment files (systemd units,
// Kubernetes manifests, Redis settings) described in docs/deploy.md. Its
// test keeps them parseable and their pigeonpost configuration valid.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pigeonpost/pigeonpost/config"
)

// manifest is what the test reads of a Kubernetes object.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct{ Name string }
	Data       map[string]string // ConfigMap
	StringData map[string]string `yaml:"stringData"` // Secret
	Spec       struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Args []string
					Env  []struct{ Name, Value string }
				}
			}
		}
	}
}

// readManifests decodes every YAML document of deploy/kubernetes/*.yaml.
func readManifests(t *testing.T) map[string]manifest {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	byName := map[string]manifest{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			var m manifest
			if err := node.Decode(&m); err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", f, i)
			}
			key := m.Kind + "/" + m.Metadata.Name
			if _, dup := byName[key]; dup {
				t.Errorf("%s: %s twice", f, key)
			}
			byName[key] = m
		}
	}
	return byName
}

// Every manifest parses; the pigeonpost configuration in the ConfigMap,
// with the Secret's variables and each Deployment's own, loads: every key
// exists, every value passes validation, every PIGEONPOST_ variable names
// a key.
func TestKubernetesExample(t *testing.T) {
	ms := readManifests(t)
	for _, want := range []string{"ConfigMap/pigeonpost", "Secret/pigeonpost", "Deployment/pigeonpost",
		"Deployment/pigeonpost-deliver", "Service/pigeonpost-smtp", "Service/pigeonpost-http"} {
		if _, ok := ms[want]; !ok {
			t.Errorf("no %s", want)
		}
	}
	yml, ok := ms["ConfigMap/pigeonpost"].Data["pigeonpost.yaml"]
	if !ok {
		t.Fatal("ConfigMap/pigeonpost has no pigeonpost.yaml")
	}
	path := filepath.Join(t.TempDir(), "pigeonpost.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsFile := filepath.Join(t.TempDir(), "tls.pem")
	if err := os.WriteFile(tlsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := ms["Secret/pigeonpost"].StringData
	checkEnvNames(t, "Secret/pigeonpost", secret)
	for _, name := range []string{"Deployment/pigeonpost", "Deployment/pigeonpost-deliver"} {
		env := map[string]string{}
		for k, v := range secret {
			env[k] = v
		}
		for _, c := range ms[name].Spec.Template.Spec.Containers {
			if want := map[string]string{"Deployment/pigeonpost": "serve", "Deployment/pigeonpost-deliver": "deliver"}[name]; len(c.Args) == 0 || c.Args[0] != want {
				t.Errorf("%s runs %q, want pigeonpost %s", name, c.Args, want)
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
		}
		checkEnvNames(t, name, env)
		// The TLS files are the pigeonpost-tls Secret's, mounted at run
		// time; Load checks they can be read.
		env["PIGEONPOST_TLS_CERT_FILE"], env["PIGEONPOST_TLS_KEY_FILE"] = tlsFile, tlsFile
		cfg, err := config.Load(path, func(k string) string { return env[k] })
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "Deployment/pigeonpost" && cfg.Delivery.Workers != 0 {
			t.Errorf("%s: delivery.workers %d, want 0 (accepting only)", name, cfg.Delivery.Workers)
		}
		if name == "Deployment/pigeonpost-deliver" && cfg.Delivery.Workers == 0 {
			t.Errorf("%s delivers nothing", name)
		}
	}
}

func checkEnvNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := config.EnvNames()
	for k := range env {
		if strings.HasPrefix(k, "PIGEONPOST_") && !slices.Contains(known, k) {
			t.Errorf("%s: %s is no configuration key", where, k)
		}
	}
}

// The systemd unit is sections of Key=Value lines, and sets every
// PIGEONPOST_ variable to a key that exists.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("systemd/pigeonpost.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections := map[string]map[string][]string{}
	var cur map[string][]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string][]string{}
			sections[line] = cur
		case cur == nil:
			t.Fatalf("line %d: outside a section: %q", n, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %d: not Key=Value: %q", n, line)
			}
			cur[k] = append(cur[k], v)
		}
	}
	service := sections["[Service]"]
	if service == nil || sections["[Unit]"] == nil || sections["[Install]"] == nil {
		t.Fatalf("sections %v", sections)
	}
	env := map[string]string{}
	for _, e := range service["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	checkEnvNames(t, "pigeonpost.service", env)
	if exec := service["ExecStart"]; len(exec) != 1 || !strings.Contains(exec[0], " serve ") {
		t.Errorf("ExecStart %q", exec)
	}
}
