# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options, named and behaving like kubernetes.core's.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
      - When neither O(kubeconfig) nor O(host) is set, the first file of E(KUBECONFIG) or C(~/.kube/config) is used.
      - The file's content is never returned or logged.
    type: path
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the API server, overriding the kubeconfig's. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token to authenticate with. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Keep it on; fix O(ca_cert) instead.
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA bundle that signed the API server's certificate.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for TLS client authentication.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
    type: path
    aliases: [key_file]
  request_timeout:
    description:
      - Seconds to wait for one API response.
    type: int
    default: 30
requirements:
  - kubernetes >= 30.1.0
  - PyYAML >= 6.0
  - cryptography >= 42.0
"""
