package main

import "encoding/json"

// Request is what `meshsim query` reads.
type Request struct {
	Snapshot Snapshot `json:"snapshot"`
	Queries  []Query  `json:"queries"`
}

// Snapshot is one cluster as its API server shows it.
type Snapshot struct {
	// Cluster is the cluster's name (istiod CLUSTER_ID).
	Cluster string `json:"cluster"`
	// Domain is istiod's --domain (Helm global.proxy.clusterDomain): the suffix of the
	// Kubernetes Service hostnames in istiod's registry. Default cluster.local.
	Domain string `json:"domain"`
	// IstioNamespace is istiod's namespace (root namespace default).
	IstioNamespace string `json:"istio_namespace"`
	// Mesh is the mesh config text (ConfigMap istio[-<rev>], key mesh).
	Mesh string `json:"mesh"`
	// IstiodEnv are the literal env vars of the istiod container (feature flags).
	IstiodEnv map[string]string `json:"istiod_env"`
	// RootCert is the root certificate istiod's CA signs workload certificates under
	// (ConfigMap istio-ca-root-cert, key root-cert.pem).
	RootCert string `json:"root_cert"`
	// KubeObjects: Namespaces, Services, EndpointSlices, Pods (apiVersion + kind set).
	KubeObjects []json.RawMessage `json:"kube_objects"`
	// IstioObjects: networking.istio.io / security.istio.io objects (apiVersion + kind set).
	IstioObjects []json.RawMessage `json:"istio_objects"`
	// SimulateIPAutoallocate: run istiod's ServiceEntry IP auto-allocation controller over the
	// snapshot (the lab has no istiod to write ServiceEntry status.addresses). Default true; it
	// only acts when that istiod's PILOT_ENABLE_IP_AUTOALLOCATE is on.
	SimulateIPAutoallocate *bool `json:"simulate_ip_autoallocate,omitempty"`
}

// Query is one question. Type: outbound | gateway | inbound.
type Query struct {
	ID   string `json:"id"`
	Type string `json:"type"`

	// outbound / inbound: the workload (a Pod of the snapshot by name, else namespace + labels).
	Namespace string            `json:"namespace,omitempty"`
	Pod       string            `json:"pod,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`

	// outbound: destination
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`

	// gateway: where the client's connection goes, and its TLS ClientHello
	Address string   `json:"address,omitempty"`
	SNI     string   `json:"sni,omitempty"`
	ALPN    []string `json:"alpn,omitempty"`

	// inbound: the Service (namespace/name) and Service port the request was meant for, and the
	// peer's trust domain to check
	Service         string `json:"service,omitempty"`
	PeerTrustDomain string `json:"peer_trust_domain,omitempty"`
}

// Result is what `meshsim query` writes.
type Result struct {
	Cluster      string         `json:"cluster"`
	Domain       string         `json:"domain"`
	TrustDomain  string         `json:"trust_domain"`
	IstioVersion string         `json:"istio_version"`
	Warnings     []string       `json:"warnings"`
	Allocated    map[string]any `json:"auto_allocated_addresses,omitempty"`
	Answers      []Answer       `json:"answers"`
}

// Answer to one Query. OK is true when the hop works; Problems say why not (each names what is missing).
type Answer struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
	Notes    []string `json:"notes"`

	Proxy *ProxyInfo `json:"proxy,omitempty"`

	// outbound
	DNS     *DNSInfo     `json:"dns,omitempty"`
	Service *ServiceInfo `json:"service,omitempty"`

	// simulation result (outbound, gateway, inbound)
	Listener    string `json:"listener,omitempty"`
	FilterChain string `json:"filter_chain,omitempty"`
	RouteConfig string `json:"route_config,omitempty"`
	VirtualHost string `json:"virtual_host,omitempty"`
	Route       string `json:"route,omitempty"`
	Cluster     string `json:"cluster,omitempty"`
	SimError    string `json:"simulation_error,omitempty"`

	Endpoints []EndpointInfo `json:"endpoints,omitempty"`

	// gateway
	GatewayService   string            `json:"gateway_service,omitempty"`
	GatewayPod       string            `json:"gateway_pod,omitempty"`
	TargetPort       int               `json:"target_port,omitempty"`
	GatewaysSelected []string          `json:"gateways_selecting_workload,omitempty"`
	ListenerProblems []ListenerProblem `json:"listener_problems,omitempty"`

	// inbound
	InboundTLS *InboundTLS   `json:"inbound_tls,omitempty"`
	Identity   string        `json:"server_identity,omitempty"`
	Trust      *TrustBundle  `json:"trust_bundle,omitempty"`
	Workload   *WorkloadInfo `json:"workload,omitempty"`
}

type ProxyInfo struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	IP        string            `json:"ip"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Synthetic bool              `json:"synthetic"`
	Metadata  map[string]string `json:"proxy_metadata"`
}

type DNSInfo struct {
	Capture      bool     `json:"capture"`
	CaptureFrom  string   `json:"capture_setting"`
	NameTableIPs []string `json:"name_table_ips"`
	KubeDNS      bool     `json:"kube_dns_knows_host"`
	Resolves     bool     `json:"resolves"`
	Addresses    []string `json:"addresses"`
	Reason       string   `json:"reason"`
}

type ServiceInfo struct {
	Hostname   string   `json:"hostname"`
	Namespace  string   `json:"namespace"`
	Registry   string   `json:"registry"`
	Resolution string   `json:"resolution"`
	Addresses  []string `json:"addresses"`
	Protocol   string   `json:"port_protocol"`
	MeshExt    bool     `json:"mesh_external"`
}

type EndpointInfo struct {
	Address  string   `json:"address"`
	Port     int      `json:"port"`
	Health   string   `json:"health"`
	TLSMode  string   `json:"tls_mode_label,omitempty"`
	Identity []string `json:"identity,omitempty"`
	TLS      *TLSInfo `json:"tls,omitempty"`
}

// TLSInfo: the upstream TLS the client proxy uses for an endpoint.
type TLSInfo struct {
	Mode        string   `json:"mode"` // ISTIO_MUTUAL | MUTUAL | SIMPLE | DISABLE
	SNI         string   `json:"sni"`
	ALPN        []string `json:"alpn"`
	CertSDS     []string `json:"cert_sds"`
	RootSDS     string   `json:"validation_sds"`
	SANMatchers []string `json:"san_matchers"`
}

type ListenerProblem struct {
	Listener string   `json:"listener"`
	Chains   []string `json:"filter_chains"`
	Match    string   `json:"match"`
	Problem  string   `json:"problem"`
}

type InboundTLS struct {
	RequireClientCert   bool     `json:"require_client_certificate"`
	RootSDS             string   `json:"validation_sds"`
	SANPrefixes         []string `json:"san_prefixes"`
	TrustDomains        []string `json:"accepted_trust_domains"`
	PeerTrustDomain     string   `json:"peer_trust_domain,omitempty"`
	PeerAccepted        bool     `json:"peer_accepted"`
	PlaintextAccepted   bool     `json:"plaintext_accepted"`
	MTLSMode            string   `json:"mtls"`
	CertSDS             []string `json:"cert_sds"`
	ServerALPN          []string `json:"alpn"`
	ValidationAnyDomain bool     `json:"validation_any_trust_domain"`
}

type TrustBundle struct {
	// Roots this workload's proxy verifies peers against (PEM).
	Roots []string `json:"roots"`
	// MeshConfigRoots: what istiod's trust bundle takes from caCertificates (multi-root only).
	MeshConfigRoots []string `json:"mesh_config_roots"`
	MultiRootMesh   bool     `json:"istiod_multiroot_mesh"`
	ProxyXDSAgent   bool     `json:"proxy_config_xds_agent"`
	Delivered       bool     `json:"extra_roots_delivered"`
	Error           string   `json:"error,omitempty"`
}

type WorkloadInfo struct {
	Pod            string            `json:"pod"`
	IP             string            `json:"ip"`
	ServiceAccount string            `json:"service_account"`
	Labels         map[string]string `json:"labels"`
}
