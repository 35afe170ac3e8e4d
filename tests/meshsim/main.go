// meshsim runs Istio's own config generation (pilot) in-process against a snapshot of one
// Kubernetes cluster and answers traffic questions about it: what a sidecar does with a request
// to host:port, what the east-west gateway does with a TLS connection carrying a given SNI, what a
// workload's inbound mTLS accepts and which roots its proxy trusts.
//
// It imports istio.io/istio as a library (pilot/pkg/networking/core, pilot/pkg/simulation,
// pilot/pkg/serviceregistry/kube/controller, pilot/pkg/trustbundle, pilot/pkg/controllers/ipallocate)
// pinned to one pseudo-version (see go.mod and VERSION.md). No Envoy runs and no TLS handshake is made:
// the answers are what istiod would send to the proxies, walked the way Envoy matches them.
//
// Usage:
//
//	meshsim query REQUEST.json [--out RESULT.json]   (REQUEST "-" = stdin; result to stdout by default)
//	meshsim version
//
// See README.md next to this file for the request and result formats.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// pinned Istio module and the release line it belongs to (checked by `meshsim version`).
const (
	istioModule  = "istio.io/istio"
	istioRelease = "1.31 development line (istio/istio master 2026-08-27, VERSION 1.31, istio.io/api v1.31.0-rc.0)"
)

const reexecMarker = "MESHSIM_ISTIOD_ENV_APPLIED"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "version":
		fmt.Printf("{\"istio_module\": %q, \"istio_version\": %q, \"istio_release\": %q}\n",
			istioModule, istioVersion(), istioRelease)
		return
	case "query":
	default:
		usage()
	}
	if len(os.Args) < 3 {
		usage()
	}
	in, out := os.Args[2], ""
	for i := 3; i < len(os.Args); i++ {
		if os.Args[i] == "--out" && i+1 < len(os.Args) {
			out = os.Args[i+1]
			i++
		}
	}
	var raw []byte
	var err error
	if in == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(in)
	}
	if err != nil {
		fail(out, "reading request: %v", err)
	}
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		fail(out, "request is not valid JSON of the expected shape: %v", err)
	}

	// istiod's feature flags (pilot/pkg/features) are read from the environment when the packages
	// initialise. Apply the snapshot's istiod env and start again, so that e.g.
	// ISTIO_MULTIROOT_MESH or PILOT_ENABLE_IP_AUTOALLOCATE mean here what they mean in that istiod.
	if os.Getenv(reexecMarker) == "" && len(req.Snapshot.IstiodEnv) > 0 {
		if in == "-" {
			f, err := os.CreateTemp("", "meshsim-request-*.json")
			if err != nil {
				fail(out, "temp file: %v", err)
			}
			_, _ = f.Write(raw)
			_ = f.Close()
			defer os.Remove(f.Name())
			in = f.Name()
		}
		env := os.Environ()
		keys := make([]string, 0, len(req.Snapshot.IstiodEnv))
		for k := range req.Snapshot.IstiodEnv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if istiodEnvHonoured(k) {
				env = append(env, k+"="+req.Snapshot.IstiodEnv[k])
			}
		}
		env = append(env, reexecMarker+"=1")
		args := []string{os.Args[0], "query", in}
		if out != "" {
			args = append(args, "--out", out)
		}
		exe, err := os.Executable()
		if err != nil {
			fail(out, "cannot find own executable: %v", err)
		}
		if err := syscall.Exec(exe, args, env); err != nil {
			fail(out, "re-exec with istiod env: %v", err)
		}
	}

	quietLogs()
	var result *Result
	// pilot's test helpers need a *testing.T (t.Cleanup, t.Fatal): run the whole job as one test,
	// with the testing package's own runner; its output goes to stderr, stdout carries the result.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	os.Args = os.Args[:1]
	m := testing.MainStart(testDeps{}, []testing.InternalTest{{
		Name: "meshsim",
		F: func(t *testing.T) {
			result = run(t, &req)
		},
	}}, nil, nil, nil)
	code := m.Run()
	os.Stdout = stdout
	if code != 0 || result == nil {
		fail(out, "istio config generation failed for cluster %q (see the test failure printed above)", req.Snapshot.Cluster)
	}
	result.IstioVersion = istioVersion()
	write(out, result)
}

// istiodEnvHonoured: the istiod env vars passed on to pilot's feature flags.
func istiodEnvHonoured(k string) bool {
	for _, p := range []string{"PILOT_", "ISTIO_", "ENABLE_", "CLUSTER_ID", "ISTIOD_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func istioVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == istioModule {
				return d.Version
			}
		}
	}
	return "unknown"
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: meshsim query REQUEST.json|- [--out RESULT.json] | meshsim version")
	os.Exit(2)
}

func write(out string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshsim: encoding result: %v\n", err)
		os.Exit(1)
	}
	b = append(b, '\n')
	if out == "" {
		_, _ = os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "meshsim: writing %s: %v\n", out, err)
		os.Exit(1)
	}
}

func fail(out, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "meshsim: "+msg)
	write(out, map[string]string{"error": msg})
	os.Exit(1)
}
