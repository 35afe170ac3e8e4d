package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/controllers/ipallocate"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	autoallocate "istio.io/istio/pilot/pkg/networking/serviceentry"
	"istio.io/istio/pilot/pkg/serviceregistry"
	kubecontroller "istio.io/istio/pilot/pkg/serviceregistry/kube/controller"
	"istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/schema/gvr"
	kubelib "istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/kclient/clienttest"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/util/sets"
)

// Env is istiod's view of one cluster, built from a Snapshot with pilot's own code.
type Env struct {
	snap     *Snapshot
	mesh     *meshconfig.MeshConfig
	cg       *core.ConfigGenTest
	pods     []*corev1.Pod
	services []*corev1.Service
	configs  []config.Config
	warnings []string
	alloc    map[string]any
}

// lazyUpdater lets the Kubernetes registry be built before the environment whose endpoint index
// it feeds exists (the same order pilot/test/xds uses with its DiscoveryServer).
type lazyUpdater struct{ model.XDSUpdater }

func quietLogs() {
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.ErrorLevel)
	}
}

func buildEnv(t *testing.T, snap *Snapshot) *Env {
	e := &Env{snap: snap, alloc: map[string]any{}}
	if snap.Domain == "" {
		snap.Domain = "cluster.local"
	}
	if snap.IstioNamespace == "" {
		snap.IstioNamespace = "istio-system"
	}
	m, err := mesh.ApplyMeshConfigDefaults(snap.Mesh)
	if err != nil {
		t.Fatalf("cluster %s: mesh config (ConfigMap istio, key mesh) is not valid for istiod: %v", snap.Cluster, err)
	}
	if m.RootNamespace == "" {
		m.RootNamespace = snap.IstioNamespace
	}
	e.mesh = m

	// Kubernetes objects, decoded with Istio's own codec.
	decode := kubelib.IstioCodec.UniversalDeserializer().Decode
	var kubeObjects []runtime.Object
	for i, raw := range snap.KubeObjects {
		o, _, err := decode(raw, nil, nil)
		if err != nil {
			e.warn("kube object #%d not understood, skipped: %v", i, err)
			continue
		}
		switch v := o.(type) {
		case *corev1.Pod:
			e.pods = append(e.pods, v)
		case *corev1.Service:
			e.services = append(e.services, v)
		}
		kubeObjects = append(kubeObjects, o)
	}

	// Istio objects, parsed and validated the way istioctl/istiod's webhook would.
	for _, raw := range snap.IstioObjects {
		cfgs, _, err := crd.ParseInputs(string(raw))
		if err != nil {
			e.warn("Istio object %s rejected by Istio's validation (the webhook would refuse it), skipped: %v", objName(raw), err)
			continue
		}
		e.configs = append(e.configs, cfgs...)
	}
	e.allocateIPs(t)

	lazy := &lazyUpdater{}
	watcher := meshwatcher.NewTestWatcher(m)
	clusterID := cluster.ID(snap.Cluster)
	client := kubelib.NewFakeClient(kubeObjects...)
	kc, _ := kubecontroller.NewFakeControllerWithOptions(t, kubecontroller.FakeControllerOptions{
		Client:          client,
		ClusterID:       clusterID,
		DomainSuffix:    snap.Domain, // the cluster's real domain, not the stock fake's cluster.local
		XDSUpdater:      lazy,
		SkipRun:         true,
		ConfigCluster:   true,
		MeshWatcher:     watcher,
		SystemNamespace: snap.IstioNamespace,
		CRDs: []schema.GroupVersionResource{
			gvr.AuthorizationPolicy, gvr.PeerAuthentication, gvr.WorkloadEntry, gvr.ServiceEntry,
		},
	})
	cg := core.NewConfigGenTest(t, core.TestOptions{
		Configs:           e.configs,
		MeshConfig:        m,
		XDSUpdater:        lazy,
		ServiceRegistries: []serviceregistry.Instance{kc},
		SkipRun:           true,
		ClusterID:         clusterID,
	})
	// As istiod's multicluster controller does (PILOT_ENABLE_SERVICEENTRY_SELECT_PODS, on by default):
	// pod events reach the ServiceEntry registry, so a ServiceEntry's workloadSelector selects pods.
	kc.AppendWorkloadHandler(cg.ServiceEntryRegistry.WorkloadInstanceHandler)
	lazy.XDSUpdater = model.NewEndpointIndexUpdater(cg.Env().EndpointIndex)
	cg.Run()
	if err := cg.Env().InitNetworksManager(lazy); err != nil {
		t.Fatal(err)
	}
	cg.Env().PushContext().InitContext(cg.Env(), nil, nil)
	e.cg = cg
	return e
}

func (e *Env) warn(format string, args ...any) {
	e.warnings = append(e.warnings, fmt.Sprintf(format, args...))
}

func objName(raw json.RawMessage) string {
	var o struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &o)
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Metadata.Namespace, o.Metadata.Name)
}

// allocateIPs runs istiod's ServiceEntry IP auto-allocation controller (pilot/pkg/controllers/ipallocate)
// over the snapshot's ServiceEntries, as the cluster's istiod would (it writes status.addresses; the
// lab has no istiod). Addresses already in a ServiceEntry's status are kept, as the controller does.
func (e *Env) allocateIPs(t *testing.T) {
	if e.snap.SimulateIPAutoallocate != nil && !*e.snap.SimulateIPAutoallocate {
		return
	}
	if !features.EnableIPAutoallocate {
		e.alloc["enabled"] = false
		return
	}
	e.alloc["enabled"] = true
	var ses []runtime.Object
	idx := map[string]int{}
	for i, c := range e.configs {
		if c.GroupVersionKind != gvk.ServiceEntry {
			continue
		}
		obj, err := crd.ConvertConfig(c)
		if err != nil {
			t.Fatalf("ServiceEntry %s/%s: %v", c.Namespace, c.Name, err)
		}
		js, _ := json.Marshal(obj)
		se := &networkingv1.ServiceEntry{}
		if err := json.Unmarshal(js, se); err != nil {
			t.Fatalf("ServiceEntry %s/%s: %v", c.Namespace, c.Name, err)
		}
		se.APIVersion, se.Kind = "networking.istio.io/v1", "ServiceEntry"
		ses = append(ses, se)
		idx[c.Namespace+"/"+c.Name] = i
	}
	if len(ses) == 0 {
		return
	}
	stop := test.NewStop(t)
	c := kubelib.NewFakeClient(ses...)
	clienttest.MakeCRD(t, c, gvr.ServiceEntry)
	alloc := ipallocate.NewIPAllocator(stop, c)
	go alloc.Run(stop)
	c.RunAndWait(stop)
	deadline := time.Now().Add(10 * time.Second)
	for !alloc.HasSynced() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// wait until every eligible ServiceEntry carries an address per host
	get := func(key string) *networkingv1.ServiceEntry {
		ns, name, _ := strings.Cut(key, "/")
		se, err := c.Istio().NetworkingV1().ServiceEntries(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ServiceEntry %s: %v", key, err)
		}
		return se
	}
	for {
		pending := 0
		for key := range idx {
			se := get(key)
			if !autoallocate.ShouldV2AutoAllocateIP(se) {
				continue
			}
			have := autoallocate.GetHostAddressesFromServiceEntry(se)
			for _, h := range se.Spec.Hosts {
				if !strings.HasPrefix(h, "*") && len(have[h]) == 0 {
					pending++
				}
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			if pending > 0 {
				e.warn("IP auto-allocation did not assign addresses to %d host(s) within 10s", pending)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for key, i := range idx {
		se := get(key)
		e.configs[i].Status = se.Status.DeepCopy()
		addrs := map[string][]string{}
		for h, as := range autoallocate.GetHostAddressesFromServiceEntry(se) {
			for _, a := range as {
				addrs[h] = append(addrs[h], a.String())
			}
		}
		if len(addrs) > 0 {
			e.alloc[key] = addrs
		}
	}
}

// ---------------------------------------------------------------------------------------------
// snapshot lookups
// ---------------------------------------------------------------------------------------------

func (e *Env) findPod(ns, name string, lbls map[string]string) *corev1.Pod {
	var cands []*corev1.Pod
	for _, p := range e.pods {
		if p.Namespace != ns || p.Status.PodIP == "" {
			continue
		}
		if name != "" {
			if p.Name == name {
				return p
			}
			continue
		}
		if lbls != nil && selects(lbls, p.Labels) {
			cands = append(cands, p)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Name < cands[j].Name })
	if len(cands) > 0 {
		return cands[0]
	}
	return nil
}

func (e *Env) podsFor(svc *corev1.Service) []*corev1.Pod {
	var out []*corev1.Pod
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	for _, p := range e.pods {
		if p.Namespace == svc.Namespace && p.Status.PodIP != "" && selects(svc.Spec.Selector, p.Labels) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Env) service(nsName string) *corev1.Service {
	for _, s := range e.services {
		if s.Namespace+"/"+s.Name == nsName {
			return s
		}
	}
	return nil
}

func selects(selector, lbls map[string]string) bool {
	for k, v := range selector {
		if got, ok := lbls[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// targetPort resolves a Service port to the port the pod listens on.
func targetPort(sp corev1.ServicePort, pod *corev1.Pod) int {
	if sp.TargetPort.IntValue() != 0 {
		return sp.TargetPort.IntValue()
	}
	if sp.TargetPort.StrVal != "" && pod != nil {
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal {
					return int(cp.ContainerPort)
				}
			}
		}
		return 0
	}
	return int(sp.Port)
}

func (e *Env) gatewayConfigsSelecting(lbls map[string]string, ns string) []string {
	var out []string
	for _, c := range e.cg.Store().List(gvk.Gateway, "") {
		sel := map[string]string{}
		if gw, ok := c.Spec.(interface{ GetSelector() map[string]string }); ok {
			sel = gw.GetSelector()
		}
		if selects(sel, lbls) {
			out = append(out, c.Namespace+"/"+c.Name)
		}
	}
	sort.Strings(out)
	return sets.SortedList(sets.New(out...))
}

// gatewayServersOnPort: "<ns>/<name> hosts [...]" for the servers of the given Gateways on a port
// (Istio binds a Gateway server's port number as the Service port, or the target port).
func (e *Env) gatewayServersOnPort(names []string, port, target int) []string {
	var out []string
	for _, c := range e.cg.Store().List(gvk.Gateway, "") {
		key := c.Namespace + "/" + c.Name
		if !slices.Contains(names, key) {
			continue
		}
		gw, ok := c.Spec.(*networking.Gateway)
		if !ok {
			continue
		}
		for _, srv := range gw.GetServers() {
			if n := int(srv.GetPort().GetNumber()); n == port || n == target {
				out = append(out, fmt.Sprintf("%s hosts %v", key, srv.GetHosts()))
			}
		}
	}
	return out
}
