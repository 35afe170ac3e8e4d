package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"

	"istio.io/api/annotation"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/pkg/trustbundle"
	"istio.io/istio/pilot/pkg/xds/endpoints"
	"istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config/host"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/protocol"
)

func clusterIDOf(s *Snapshot) cluster.ID { return cluster.ID(s.Cluster) }

const proxyIstioVersion = "1.31.0"

func run(t *testing.T, req *Request) *Result {
	e := buildEnv(t, &req.Snapshot)
	res := &Result{
		Cluster:     req.Snapshot.Cluster,
		Domain:      req.Snapshot.Domain,
		TrustDomain: e.mesh.TrustDomain,
		Allocated:   e.alloc,
	}
	for _, q := range req.Queries {
		var a Answer
		switch q.Type {
		case "outbound":
			a = e.outbound(t, q)
		case "gateway":
			a = e.gateway(t, q)
		case "inbound":
			a = e.inbound(t, q)
		default:
			a = Answer{Problems: []string{fmt.Sprintf("unknown query type %q (outbound, gateway, inbound)", q.Type)}}
		}
		a.ID, a.Type = q.ID, q.Type
		a.OK = len(a.Problems) == 0
		if a.Problems == nil {
			a.Problems = []string{}
		}
		if a.Notes == nil {
			a.Notes = []string{}
		}
		res.Answers = append(res.Answers, a)
	}
	res.Warnings = e.warnings
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	return res
}

// ---------------------------------------------------------------------------------------------
// proxies
// ---------------------------------------------------------------------------------------------

// proxyMetadata: the pilot-agent env of a proxy: mesh defaultConfig.proxyMetadata, overridden by
// the pod's proxy.istio.io/config annotation (what the injector and the agent merge).
func (e *Env) proxyMetadata(pod *corev1.Pod) (map[string]string, string) {
	md := map[string]string{}
	for k, v := range e.mesh.GetDefaultConfig().GetProxyMetadata() {
		md[k] = v
	}
	src := "mesh config defaultConfig.proxyMetadata"
	if pod != nil {
		if ann, ok := pod.Annotations[annotation.ProxyConfig.Name]; ok {
			pc, err := mesh.MergeProxyConfig(ann, &meshconfig.ProxyConfig{})
			if err != nil {
				e.warn("pod %s/%s: annotation %s not valid, ignored: %v", pod.Namespace, pod.Name, annotation.ProxyConfig.Name, err)
			} else if len(pc.GetProxyMetadata()) > 0 {
				for k, v := range pc.GetProxyMetadata() {
					md[k] = v
				}
				src = "pod annotation " + annotation.ProxyConfig.Name + " over mesh config defaultConfig.proxyMetadata"
			}
		}
	}
	return md, src
}

func (e *Env) proxy(t *testing.T, typ model.NodeType, pod *corev1.Pod, ns string, lbls map[string]string) (*model.Proxy, *ProxyInfo, map[string]string, string) {
	info := &ProxyInfo{Type: string(typ), Namespace: ns}
	if pod != nil {
		info.IP, info.Labels, info.Namespace = pod.Status.PodIP, pod.Labels, pod.Namespace
		info.ID = pod.Name + "." + pod.Namespace
	} else {
		info.IP, info.Labels, info.Synthetic = "100.127.255.254", lbls, true
		info.ID = "meshsim-client." + ns
	}
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	md, src := e.proxyMetadata(pod)
	info.Metadata = md
	raw := map[string]string{}
	for k, v := range md {
		if strings.HasPrefix(k, "ISTIO_META_") {
			raw[strings.TrimPrefix(k, "ISTIO_META_")] = v
		}
	}
	nm := &model.NodeMetadata{}
	if b, err := json.Marshal(raw); err == nil {
		if err := json.Unmarshal(b, nm); err != nil {
			e.warn("proxy %s: ISTIO_META_* proxy metadata not understood: %v", info.ID, err)
			nm = &model.NodeMetadata{}
		}
	}
	nm.Labels = info.Labels
	nm.Namespace = info.Namespace
	nm.ClusterID = clusterIDOf(e.snap)
	nm.IstioVersion = proxyIstioVersion
	if pod != nil {
		nm.ServiceAccount = pod.Spec.ServiceAccountName
		nm.Annotations = pod.Annotations
	}
	p := &model.Proxy{
		Type:            typ,
		IPAddresses:     []string{info.IP},
		ID:              info.ID,
		ConfigNamespace: info.Namespace,
		Labels:          info.Labels,
		Metadata:        nm,
		DNSDomain:       info.Namespace + ".svc." + e.snap.Domain,
	}
	p = e.cg.SetupProxy(p)
	return p, info, md, src
}

// ---------------------------------------------------------------------------------------------
// outbound
// ---------------------------------------------------------------------------------------------

func (e *Env) outbound(t *testing.T, q Query) (a Answer) {
	if q.Namespace == "" || q.Host == "" || q.Port == 0 {
		a.Problems = append(a.Problems, "outbound query needs namespace, host and port")
		return a
	}
	pod := e.findPod(q.Namespace, q.Pod, q.Labels)
	p, info, md, mdSrc := e.proxy(t, model.SidecarProxy, pod, q.Namespace, q.Labels)
	a.Proxy = info
	a.Trust = e.trustBundle(md)
	push := e.cg.PushContext()
	hn := host.Name(q.Host)
	svc := push.ServiceForHostname(p, hn)

	// DNS: the sidecar's DNS proxy answers from istiod's name table when capture is on; kube-dns
	// only knows this cluster's own Services.
	dns := &DNSInfo{Capture: bool(p.Metadata.DNSCapture), NameTableIPs: []string{}, Addresses: []string{}}
	dns.CaptureFrom = fmt.Sprintf("ISTIO_META_DNS_CAPTURE=%q (%s)", info.Metadata["ISTIO_META_DNS_CAPTURE"], mdSrc)
	nt := e.cg.ConfigGen.BuildNameTable(p, push)
	if ni, ok := nt.Table[q.Host]; ok {
		dns.NameTableIPs = append(dns.NameTableIPs, ni.Ips...)
	}
	var kubeIP string
	for _, s := range e.services {
		if s.Name+"."+s.Namespace+".svc."+e.snap.Domain == q.Host {
			dns.KubeDNS = true
			kubeIP = s.Spec.ClusterIP
		}
	}
	switch {
	case dns.Capture && len(dns.NameTableIPs) > 0:
		dns.Resolves, dns.Addresses = true, dns.NameTableIPs
		dns.Reason = "the sidecar's DNS proxy answers from istiod's name table"
	case dns.KubeDNS:
		dns.Resolves = true
		if kubeIP != "" {
			dns.Addresses = []string{kubeIP}
		}
		dns.Reason = "a Kubernetes Service of this cluster: kube-dns answers"
	case !dns.Capture:
		dns.Reason = fmt.Sprintf("DNS capture is off for this proxy (%s) and kube-dns does not know %s: the name does not resolve", dns.CaptureFrom, q.Host)
	case svc == nil:
		dns.Reason = fmt.Sprintf("%s is not in this sidecar's registry (no ServiceEntry/Service visible from namespace %s)", q.Host, q.Namespace)
	default:
		dns.Reason = fmt.Sprintf("the DNS proxy name table has no address for %s: the ServiceEntry has no spec.addresses and no auto-allocated address (istiod PILOT_ENABLE_IP_AUTOALLOCATE=%v)", q.Host, features.EnableIPAutoallocate)
	}
	a.DNS = dns

	if svc == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("%s is not a service this sidecar knows (no ServiceEntry or Kubernetes Service with that hostname visible from namespace %s)", q.Host, q.Namespace))
		return a
	}
	si := &ServiceInfo{Hostname: string(svc.Hostname), Namespace: svc.Attributes.Namespace, Registry: string(svc.Attributes.ServiceRegistry),
		Resolution: resolutionName(svc.Resolution), Addresses: svc.GetAllAddressesForProxy(p), MeshExt: svc.MeshExternal}
	port, found := svc.Ports.GetByPort(q.Port)
	if !found {
		a.Service = si
		a.Problems = append(a.Problems, fmt.Sprintf("%s has no port %d", q.Host, q.Port))
		return a
	}
	si.Protocol = string(port.Protocol)
	a.Service = si

	addr := "1.3.3.7" // any address: a request that did not resolve still shows where it would go
	if len(dns.Addresses) > 0 {
		addr = dns.Addresses[0]
	} else if v := svc.GetAddressForProxy(p); v != "" && v != "0.0.0.0" {
		addr = v
	}
	sim := simulation.NewSimulationFromConfigGen(t, e.cg, p)
	call := simulation.Call{Address: addr, Port: q.Port, Protocol: simProtocol(port.Protocol), HostHeader: q.Host,
		CallMode: simulation.CallModeOutbound}
	r := sim.Run(call)
	a.Listener, a.FilterChain, a.RouteConfig, a.VirtualHost, a.Route, a.Cluster = r.ListenerMatched, r.FilterChainMatched,
		r.RouteConfigMatched, r.VirtualHostMatched, r.RouteMatched, r.ClusterMatched
	want := model.BuildSubsetKey(model.TrafficDirectionOutbound, "", hn, q.Port)
	if r.Error != nil {
		a.SimError = r.Error.Error()
		a.Problems = append(a.Problems, fmt.Sprintf("the sidecar does not route %s:%d (%s protocol, to %s): %v", q.Host, q.Port, port.Protocol, addr, r.Error))
		return a
	}
	if !strings.HasPrefix(r.ClusterMatched, strings.TrimSuffix(want, string(hn))) || !strings.HasSuffix(r.ClusterMatched, "|"+string(hn)) {
		a.Problems = append(a.Problems, fmt.Sprintf("the sidecar sends %s:%d to cluster %q, not to the service's cluster %q", q.Host, q.Port, r.ClusterMatched, want))
		return a
	}
	c := findCluster(sim.Clusters, r.ClusterMatched)
	if c == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("route points at cluster %q that istiod did not generate", r.ClusterMatched))
		return a
	}
	a.Endpoints = e.endpoints(p, c)
	if len(a.Endpoints) == 0 {
		a.Problems = append(a.Problems, fmt.Sprintf("cluster %s has no endpoints", c.Name))
	}
	return a
}

func resolutionName(r model.Resolution) string {
	switch r {
	case model.ClientSideLB:
		return "STATIC/ClientSideLB"
	case model.DNSLB:
		return "DNS"
	case model.DNSRoundRobinLB:
		return "DNS_ROUND_ROBIN"
	case model.Passthrough:
		return "NONE/Passthrough"
	}
	return fmt.Sprint(r)
}

func simProtocol(p protocol.Instance) simulation.Protocol {
	switch {
	case p.IsHTTP2() || p.IsGRPC():
		return simulation.HTTP2
	case p.IsHTTP():
		return simulation.HTTP
	}
	return simulation.TCP
}

func findCluster(cs []*clusterv3.Cluster, name string) *clusterv3.Cluster {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// endpoints: the cluster's endpoints as the proxy gets them (EDS built by istiod's endpoint
// builder, or the cluster's inline load assignment), each with the upstream TLS Envoy would use.
func (e *Env) endpoints(p *model.Proxy, c *clusterv3.Cluster) []EndpointInfo {
	var cla *endpointv3.ClusterLoadAssignment
	if c.GetType() == clusterv3.Cluster_EDS {
		b := endpoints.NewEndpointBuilder(c.Name, p, e.cg.PushContext())
		cla = b.BuildClusterLoadAssignment(e.cg.Env().EndpointIndex)
	} else {
		cla = c.GetLoadAssignment()
	}
	out := []EndpointInfo{}
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			ep := EndpointInfo{Address: sa.GetAddress(), Port: int(sa.GetPortValue()), Health: lb.GetHealthStatus().String()}
			tsm := lb.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]
			if v, ok := tsm.GetFields()["tlsMode"]; ok {
				ep.TLSMode = v.GetStringValue()
			}
			ep.TLS = upstreamTLS(selectTransportSocket(c, tsm.GetFields()))
			out = append(out, ep)
		}
	}
	return out
}

// selectTransportSocket: Envoy's transport_socket_matches (first whose match is a subset of the
// endpoint's envoy.transport_socket_match metadata), else the cluster's transport_socket.
func selectTransportSocket(c *clusterv3.Cluster, md map[string]*structpb.Value) *corev3.TransportSocket {
	for _, m := range c.GetTransportSocketMatches() {
		ok := true
		for k, v := range m.GetMatch().GetFields() {
			got, f := md[k]
			if !f || got.GetStringValue() != v.GetStringValue() {
				ok = false
				break
			}
		}
		if ok {
			return m.GetTransportSocket()
		}
	}
	return c.GetTransportSocket()
}

func upstreamTLS(ts *corev3.TransportSocket) *TLSInfo {
	info := &TLSInfo{Mode: "DISABLE", ALPN: []string{}, CertSDS: []string{}, SANMatchers: []string{}}
	if ts == nil || ts.GetTypedConfig() == nil || !strings.HasSuffix(ts.GetTypedConfig().GetTypeUrl(), "UpstreamTlsContext") {
		return info
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		info.Mode = "UNKNOWN: " + err.Error()
		return info
	}
	ctc := u.GetCommonTlsContext()
	info.SNI = u.GetSni()
	info.ALPN = append(info.ALPN, ctc.GetAlpnProtocols()...)
	for _, s := range ctc.GetTlsCertificateSdsSecretConfigs() {
		info.CertSDS = append(info.CertSDS, s.GetName())
	}
	dvc, root := validation(ctc)
	info.RootSDS = root
	info.SANMatchers = sanMatchers(dvc)
	switch {
	case len(info.CertSDS) > 0 && info.CertSDS[0] == "default" && root == "ROOTCA":
		info.Mode = "ISTIO_MUTUAL"
	case len(info.CertSDS) > 0 || len(ctc.GetTlsCertificates()) > 0:
		info.Mode = "MUTUAL"
	default:
		info.Mode = "SIMPLE"
	}
	return info
}

func validation(ctc *tlsv3.CommonTlsContext) (*tlsv3.CertificateValidationContext, string) {
	if cvc := ctc.GetCombinedValidationContext(); cvc != nil {
		return cvc.GetDefaultValidationContext(), cvc.GetValidationContextSdsSecretConfig().GetName()
	}
	if v := ctc.GetValidationContextSdsSecretConfig(); v != nil {
		return nil, v.GetName()
	}
	return ctc.GetValidationContext(), ""
}

func sanMatchers(v *tlsv3.CertificateValidationContext) []string {
	out := []string{}
	for _, m := range v.GetMatchTypedSubjectAltNames() {
		out = append(out, v3SanType(m.GetSanType())+" "+stringMatcher(m.GetMatcher()))
	}
	for _, m := range v.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated field, still read by Envoy
		out = append(out, "ANY "+stringMatcher(m))
	}
	return out
}

func v3SanType(s tlsv3.SubjectAltNameMatcher_SanType) string {
	return strings.TrimPrefix(s.String(), "SAN_TYPE_")
}

func stringMatcher(m *matcherv3.StringMatcher) string {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return "exact:" + p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return "prefix:" + p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		return "suffix:" + p.Suffix
	case *matcherv3.StringMatcher_Contains:
		return "contains:" + p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		return "regex:" + p.SafeRegex.GetRegex()
	}
	return m.String()
}

// ---------------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------------

func (e *Env) gateway(t *testing.T, q Query) (a Answer) {
	if q.Address == "" || q.Port == 0 || q.SNI == "" {
		a.Problems = append(a.Problems, "gateway query needs address, port and sni")
		return a
	}
	// the Service that owns this address:port (load-balancer ingress, externalIPs, clusterIP)
	var svc *corev1.Service
	var sp corev1.ServicePort
	for _, s := range e.services {
		addrs := append([]string{s.Spec.ClusterIP}, s.Spec.ExternalIPs...)
		for _, ing := range s.Status.LoadBalancer.Ingress {
			addrs = append(addrs, ing.IP, ing.Hostname)
		}
		match := false
		for _, ad := range addrs {
			if ad != "" && ad == q.Address {
				match = true
			}
		}
		if !match {
			continue
		}
		for _, p := range s.Spec.Ports {
			if int(p.Port) == q.Port {
				svc, sp = s, p
			}
		}
	}
	if svc == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("no Service of cluster %s has address %s with port %d (load-balancer ingress, externalIPs or clusterIP)", e.snap.Cluster, q.Address, q.Port))
		return a
	}
	a.GatewayService = svc.Namespace + "/" + svc.Name
	pods := e.podsFor(svc)
	if len(pods) == 0 {
		a.Problems = append(a.Problems, fmt.Sprintf("gateway Service %s selects no pod with an IP (selector %v)", a.GatewayService, svc.Spec.Selector))
		return a
	}
	pod := pods[0]
	a.GatewayPod = pod.Namespace + "/" + pod.Name
	tp := targetPort(sp, pod)
	a.TargetPort = tp
	p, info, _, _ := e.proxy(t, model.Router, pod, pod.Namespace, pod.Labels)
	a.Proxy = info
	a.GatewaysSelected = e.gatewayConfigsSelecting(pod.Labels, pod.Namespace)
	sim := simulation.NewSimulationFromConfigGen(t, e.cg, p)

	for _, l := range sim.Listeners {
		a.ListenerProblems = append(a.ListenerProblems, duplicateChains(l)...)
	}
	for _, lp := range a.ListenerProblems {
		a.Problems = append(a.Problems, fmt.Sprintf("Envoy would reject listener %s of gateway %s: %s", lp.Listener, a.GatewayPod, lp.Problem))
	}

	alpns := q.ALPN
	if len(alpns) == 0 {
		alpns = []string{"istio"}
	}
	var r simulation.Result
	for _, alpn := range alpns {
		r = sim.Run(simulation.Call{Address: pod.Status.PodIP, Port: tp, Protocol: simulation.TCP, TLS: simulation.MTLS,
			Sni: q.SNI, Alpn: alpn, CallMode: simulation.CallModeGateway})
		if r.Error == nil {
			break
		}
	}
	a.Listener, a.FilterChain, a.Cluster = r.ListenerMatched, r.FilterChainMatched, r.ClusterMatched
	if r.Error != nil {
		a.SimError = r.Error.Error()
		switch r.Error {
		case simulation.ErrNoListener:
			if servers := e.gatewayServersOnPort(a.GatewaysSelected, int(sp.Port), tp); len(servers) > 0 {
				a.Problems = append(a.Problems, fmt.Sprintf("gateway %s has no listener on port %d although Gateway server(s) %v select it there: their hosts match no service of this cluster's registry (istiod domain %s), so istiod generates no filter chain and no listener",
					a.GatewayPod, tp, servers, e.snap.Domain))
			} else {
				a.Problems = append(a.Problems, fmt.Sprintf("gateway %s has no listener on port %d: no Gateway server selects this workload on that port (Gateways whose selector matches the pod labels %v: %v)",
					a.GatewayPod, tp, pod.Labels, a.GatewaysSelected))
			}
		case simulation.ErrNoFilterChain:
			a.Problems = append(a.Problems, fmt.Sprintf("no filter chain matched: gateway %s listener %s does not route SNI %s (no AUTO_PASSTHROUGH server host matches a service of this cluster's registry for it)",
				a.GatewayPod, r.ListenerMatched, q.SNI))
		case simulation.ErrMultipleFilterChain:
			a.Problems = append(a.Problems, fmt.Sprintf("several filter chains of gateway %s listener %s match SNI %s (duplicate matches: Envoy rejects the listener)", a.GatewayPod, r.ListenerMatched, q.SNI))
		default:
			a.Problems = append(a.Problems, fmt.Sprintf("gateway %s does not pass TLS with SNI %s on port %d: %v", a.GatewayPod, q.SNI, tp, r.Error))
		}
		return a
	}
	if r.ClusterMatched == "" || r.ClusterMatched == "BlackHoleCluster" {
		a.Problems = append(a.Problems, fmt.Sprintf("gateway %s sends SNI %s to %q", a.GatewayPod, q.SNI, r.ClusterMatched))
		return a
	}
	c := findCluster(sim.Clusters, r.ClusterMatched)
	if c == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("gateway %s routes SNI %s to cluster %q that istiod did not generate for it", a.GatewayPod, q.SNI, r.ClusterMatched))
		return a
	}
	a.Endpoints = e.endpoints(p, c)
	healthy := 0
	for _, ep := range a.Endpoints {
		if ep.Health == "HEALTHY" || ep.Health == "UNKNOWN" {
			healthy++
		}
	}
	if healthy == 0 {
		a.Problems = append(a.Problems, fmt.Sprintf("gateway %s routes SNI %s to cluster %s, which has no healthy endpoints (the service has no ready pods)", a.GatewayPod, q.SNI, c.Name))
	}
	return a
}

// duplicateChains: pairs of filter chains of one listener with an identical match. Envoy refuses
// such a listener ("multiple filter chains with the same matching rules are defined").
func duplicateChains(l *listenerv3.Listener) []ListenerProblem {
	seen := map[string]int{}
	reported := map[[2]int]bool{}
	var out []ListenerProblem
	orEmpty := func(s []string) []string {
		if len(s) == 0 {
			return []string{""}
		}
		return s
	}
	for i, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		var prefixes, sources []string
		for _, p := range m.GetPrefixRanges() {
			prefixes = append(prefixes, fmt.Sprintf("%s/%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue()))
		}
		for _, p := range m.GetSourcePrefixRanges() {
			sources = append(sources, fmt.Sprintf("%s/%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue()))
		}
		var sports []string
		for _, p := range m.GetSourcePorts() {
			sports = append(sports, fmt.Sprint(p))
		}
		for _, dst := range orEmpty(prefixes) {
			for _, sn := range orEmpty(m.GetServerNames()) {
				for _, ap := range orEmpty(m.GetApplicationProtocols()) {
					for _, src := range orEmpty(sources) {
						for _, spt := range orEmpty(sports) {
							key := fmt.Sprintf("port=%d prefix=%s server_name=%s transport=%s alpn=%s source_type=%s source=%s source_port=%s",
								m.GetDestinationPort().GetValue(), dst, sn, m.GetTransportProtocol(), ap, m.GetSourceType(), src, spt)
							if j, ok := seen[key]; ok && j != i {
								if !reported[[2]int{j, i}] {
									reported[[2]int{j, i}] = true
									out = append(out, ListenerProblem{Listener: l.GetName(), Chains: []string{chainName(l, j), chainName(l, i)}, Match: key,
										Problem: fmt.Sprintf("filter chains #%d (%s) and #%d (%s) have the same match (%s)", j, chainName(l, j), i, chainName(l, i), key)})
								}
								continue
							}
							seen[key] = i
						}
					}
				}
			}
		}
	}
	return out
}

func chainName(l *listenerv3.Listener, i int) string {
	if n := l.GetFilterChains()[i].GetName(); n != "" {
		return n
	}
	return fmt.Sprintf("%v", l.GetFilterChains()[i].GetFilterChainMatch().GetServerNames())
}

// ---------------------------------------------------------------------------------------------
// inbound
// ---------------------------------------------------------------------------------------------

func (e *Env) inbound(t *testing.T, q Query) (a Answer) {
	svc := e.service(q.Service)
	if svc == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("no Service %s in cluster %s", q.Service, e.snap.Cluster))
		return a
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == q.Port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("Service %s has no port %d", q.Service, q.Port))
		return a
	}
	pods := e.podsFor(svc)
	if len(pods) == 0 {
		a.Problems = append(a.Problems, fmt.Sprintf("Service %s selects no pod with an IP (selector %v)", q.Service, svc.Spec.Selector))
		return a
	}
	pod := pods[0]
	tp := targetPort(*sp, pod)
	a.TargetPort = tp
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	a.Workload = &WorkloadInfo{Pod: pod.Namespace + "/" + pod.Name, IP: pod.Status.PodIP, ServiceAccount: sa, Labels: pod.Labels}
	a.Identity = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", e.mesh.TrustDomain, pod.Namespace, sa)
	p, info, md, _ := e.proxy(t, model.SidecarProxy, pod, pod.Namespace, pod.Labels)
	a.Proxy = info
	a.Trust = e.trustBundle(md)
	if a.Trust.Error != "" {
		a.Problems = append(a.Problems, a.Trust.Error)
	}

	proto := protocol.Parse(sp.Name)
	if s := e.cg.PushContext().ServiceForHostname(p, host.Name(fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, e.snap.Domain))); s != nil {
		if port, ok := s.Ports.GetByPort(q.Port); ok {
			proto = port.Protocol
		}
	}
	sim := simulation.NewSimulationFromConfigGen(t, e.cg, p)
	var fc *listenerv3.FilterChain
	r := sim.Run(simulation.Call{Address: pod.Status.PodIP, Port: tp, Protocol: simProtocol(proto), TLS: simulation.MTLS,
		CallMode: simulation.CallModeInbound, CustomListenerValidations: []simulation.CustomFilterChainValidation{
			func(c *listenerv3.FilterChain) error { fc = c; return nil },
		}})
	a.Listener, a.FilterChain, a.RouteConfig, a.VirtualHost, a.Route, a.Cluster = r.ListenerMatched, r.FilterChainMatched,
		r.RouteConfigMatched, r.VirtualHostMatched, r.RouteMatched, r.ClusterMatched
	plain := sim.Run(simulation.Call{Address: pod.Status.PodIP, Port: tp, Protocol: simProtocol(proto), CallMode: simulation.CallModeInbound})
	if r.Error != nil {
		a.SimError = r.Error.Error()
		a.Problems = append(a.Problems, fmt.Sprintf("the sidecar of %s does not accept mTLS on port %d: %v", a.Workload.Pod, tp, r.Error))
		return a
	}
	if !strings.HasPrefix(r.ClusterMatched, "inbound|") {
		a.Problems = append(a.Problems, fmt.Sprintf("the sidecar of %s sends inbound mTLS on port %d to %q, not to the workload", a.Workload.Pod, tp, r.ClusterMatched))
	}
	in := &InboundTLS{SANPrefixes: []string{}, TrustDomains: []string{}, CertSDS: []string{}, ServerALPN: []string{},
		PeerTrustDomain: q.PeerTrustDomain, PlaintextAccepted: plain.Error == nil}
	in.MTLSMode = "STRICT"
	if in.PlaintextAccepted {
		in.MTLSMode = "PERMISSIVE"
	}
	if fc != nil && fc.GetTransportSocket() != nil {
		d := &tlsv3.DownstreamTlsContext{}
		if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(d); err == nil {
			in.RequireClientCert = d.GetRequireClientCertificate().GetValue()
			ctc := d.GetCommonTlsContext()
			for _, s := range ctc.GetTlsCertificateSdsSecretConfigs() {
				in.CertSDS = append(in.CertSDS, s.GetName())
			}
			in.ServerALPN = append(in.ServerALPN, ctc.GetAlpnProtocols()...)
			dvc, root := validation(ctc)
			in.RootSDS = root
			for _, m := range sanMatchers(dvc) {
				in.SANPrefixes = append(in.SANPrefixes, m)
				if _, v, ok := strings.Cut(m, " prefix:spiffe://"); ok {
					in.TrustDomains = append(in.TrustDomains, strings.TrimSuffix(v, "/"))
				}
			}
		}
	} else {
		a.Problems = append(a.Problems, fmt.Sprintf("the inbound filter chain of %s on port %d terminates no TLS", a.Workload.Pod, tp))
	}
	in.ValidationAnyDomain = len(in.SANPrefixes) == 0
	if q.PeerTrustDomain != "" {
		in.PeerAccepted = in.ValidationAnyDomain
		for _, td := range in.TrustDomains {
			if td == q.PeerTrustDomain {
				in.PeerAccepted = true
			}
		}
		if !in.PeerAccepted {
			a.Problems = append(a.Problems, fmt.Sprintf("the inbound mTLS of %s accepts client identities of trust domains %v only, not %s (add it to meshConfig.caCertificates[].trustDomains or trustDomainAliases)",
				a.Workload.Pod, in.TrustDomains, q.PeerTrustDomain))
		}
	}
	a.InboundTLS = in
	return a
}

// trustBundle: the roots a proxy of this cluster verifies peers against. istiod's CA root always;
// with ISTIO_MULTIROOT_MESH the mesh config's caCertificates are merged by istiod's trust bundle and
// pushed (PCDS) to proxies whose agent runs with PROXY_CONFIG_XDS_AGENT=true.
func (e *Env) trustBundle(md map[string]string) *TrustBundle {
	tb := &TrustBundle{MultiRootMesh: features.MultiRootMesh, ProxyXDSAgent: md["PROXY_CONFIG_XDS_AGENT"] == "true",
		Roots: []string{}, MeshConfigRoots: []string{}}
	own := strings.TrimSpace(e.snap.RootCert)
	for _, c := range e.mesh.GetCaCertificates() {
		if c.GetPem() != "" {
			tb.MeshConfigRoots = append(tb.MeshConfigRoots, c.GetPem())
		}
	}
	if own != "" {
		tb.Roots = append(tb.Roots, own+"\n")
	}
	if !features.MultiRootMesh {
		return tb
	}
	b := trustbundle.NewTrustBundle(x509.NewCertPool(), meshwatcher.NewTestWatcher(e.mesh))
	if own != "" {
		if err := b.UpdateTrustAnchor(&trustbundle.TrustAnchorUpdate{TrustAnchorConfig: trustbundle.TrustAnchorConfig{Certs: []string{own + "\n"}}, Source: trustbundle.SourceIstioCA}); err != nil {
			tb.Error = fmt.Sprintf("istiod's own root (istio-ca-root-cert) is not a usable CA certificate: %v", err)
		}
	}
	if err := b.AddMeshConfigUpdate(e.mesh); err != nil {
		tb.Error = fmt.Sprintf("istiod refuses meshConfig.caCertificates (none of them reach the proxies): %v", err)
	}
	if tb.ProxyXDSAgent {
		tb.Roots = b.GetTrustBundle()
		tb.Delivered = true
	}
	sort.Strings(tb.MeshConfigRoots)
	return tb
}
