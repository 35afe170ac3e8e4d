# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)


class ModuleDocFragment(object):
    # Named, aliased and environment-backed like kubernetes.core's: option > environment variable > kubeconfig.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, several paths joined with C(:) (merged as kubectl does), or the kubeconfig as a
        dict. Can also be set with E(K8S_AUTH_KUBECONFIG). Content given where a path belongs is refused.
      - Without O(kubeconfig) and O(host), every path of E(KUBECONFIG), else C(~/.kube/config), is used; in a pod without
        these, the pod's service account, as C(kubectl) does (its token re-read at every connection as the kubelet rotates it).
      - The secrets of a kubeconfig dict (user C(token), C(password), C(client-key-data), C(client-certificate-data),
        auth-provider config, exec env values) are masked in every result, failure and log line.
    type: raw
  context:
    description: The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: URL of the API server, overriding the kubeconfig's. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token to authenticate with. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  username:
    description: User name for basic authentication; O(api_key) wins when both are set. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description: Password for basic authentication. Can also be set with E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description: Whether to verify the API server's TLS certificate (unset, it is verified). Keep it on; fix O(ca_cert) instead. Can also be set
      with E(K8S_AUTH_VERIFY_SSL). When it is off (by this option, that variable or the kubeconfig's C(insecure-skip-tls-verify)), the module
      warns, naming the cluster and that source, and returns C(tls_verification=false).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description: Path to the CA bundle that signed the API server's certificate. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Path to a client certificate for TLS client authentication. Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Path to the key of O(client_cert). Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description: URL of an HTTP(S) proxy (or C(socks5://), C(socks5h://), C(socks4://) with PySocks installed) to reach the
      API server through, overriding the kubeconfig cluster's C(proxy-url). Can also be set with E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description: Comma-separated hosts, domains (C(.example.org)), C(host:port), IP networks (C(10.0.0.0/8)) or C(*) not to
      reach through O(proxy). Can also be set with E(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description: Headers sent to the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description: C(user:password) for the proxy's basic authentication.
        type: str
      basic_auth:
        description: C(user:password) for basic authentication.
        type: str
      user_agent:
        description: User agent sent to the proxy.
        type: str
  impersonate_user:
    description: User to impersonate (C(Impersonate-User)). Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description: Groups to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_GROUPS) (comma-separated).
    type: list
    elements: str
  request_timeout:
    description: Seconds to wait for one API response.
    type: int
    default: 30
requirements:
  - urllib3
  - kubernetes >= 30.1.0 (only for exec or auth-provider kubeconfig users)
  - PyYAML >= 6.0
  - cryptography >= 42.0
"""
