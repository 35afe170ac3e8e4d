# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable, collision-free virtual addresses for imported hostnames (pure, no I/O).

Istio's sidecar DNS proxy only answers for ServiceEntry hosts that have an address
(``pkg/dns/server/name_table.go``: hosts without an address and without Passthrough endpoints are
left out), and pods resolve a peer's domain through nothing else. Each imported host therefore gets
one address of a configurable range:

* an address a host already holds (read back from the ServiceEntries written before) is kept when
  it is still in the range and not taken by another host, so addresses never move between runs;
* a new host gets ``hash(hostname) mod size`` and, on collision, the next free one.

The default range is 240.241.0.0/16 (class E, never routed), next to, not inside, Istio's own
auto-allocation range 240.240.0.0/16, so the two never hand out the same address.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress

DEFAULT_RANGE = "240.241.0.0/16"


class AddressRangeError(ValueError):
    pass


def parse_range(value):
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise AddressRangeError("%r is not a network in CIDR form (%s)" % (value, exc))
    if net.num_addresses < 4:
        raise AddressRangeError("%s is too small; give at least a /30 (IPv4) or /126 (IPv6)" % net)
    return net


def allocate(hostnames, network, existing=None):
    """``{hostname: address}`` for every hostname, stable given ``existing`` (``{hostname: address}``)."""
    net = parse_range(network)
    first, count = int(net.network_address) + 1, net.num_addresses - 2  # network and broadcast addresses skipped
    hosts = sorted(set(hostnames))
    if len(hosts) > count:
        raise AddressRangeError("%d imported hosts do not fit in %s (%d addresses)" % (len(hosts), net, count))
    taken, result = {}, {}
    for host in hosts:
        addr = (existing or {}).get(host)
        try:
            ip = ipaddress.ip_address(addr) if addr else None
        except ValueError:
            ip = None
        if ip is not None and ip in net and first <= int(ip) < first + count and int(ip) not in taken:
            taken[int(ip)] = host
            result[host] = str(ip)
    for host in [h for h in hosts if h not in result]:
        slot = int(hashlib.sha256(host.encode("utf-8")).hexdigest(), 16) % count
        while first + slot in taken:
            slot = (slot + 1) % count
        taken[first + slot] = host
        result[host] = str(ipaddress.ip_address(first + slot))
    return result
