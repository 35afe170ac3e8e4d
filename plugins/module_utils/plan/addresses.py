# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Stable virtual addresses for imported hostnames: Istio's DNS proxy only answers for ServiceEntry hosts with an address
(``pkg/dns/server/name_table.go``). 240.241.0.0/16 (class E) is next to Istio's own auto-allocation range 240.240.0.0/16."""

import hashlib
import ipaddress

DEFAULT_RANGE = "240.241.0.0/16"


class AddressRangeError(ValueError):
    pass


def allocate(hostnames, network, existing=None):
    """``{hostname: address}`` in ``network``: one held in ``existing`` stays if in range and free; a new host gets
    ``sha256(host) mod size``, the next free one on collision."""
    try:
        net = ipaddress.ip_network(str(network), strict=True)
    except ValueError as exc:
        raise AddressRangeError("%r is not a network in CIDR form (%s)" % (network, exc))
    if net.num_addresses < 4:
        raise AddressRangeError("%s is too small; give at least a /30 (IPv4) or /126 (IPv6)" % net)
    first, count = int(net.network_address) + 1, net.num_addresses - 2  # network and broadcast addresses skipped
    hosts = sorted(set(hostnames))
    if len(hosts) > count:
        raise AddressRangeError("%d imported hosts do not fit in %s (%d addresses)" % (len(hosts), net, count))
    taken, result = set(), {}
    for host in hosts:
        try:
            ip = ipaddress.ip_address((existing or {}).get(host) or "")
        except ValueError:
            continue
        if ip in net and first <= int(ip) < first + count and int(ip) not in taken:
            taken.add(int(ip))
            result[host] = str(ip)
    for host in [h for h in hosts if h not in result]:
        slot = int(hashlib.sha256(host.encode("utf-8")).hexdigest(), 16) % count
        while first + slot in taken:
            slot = (slot + 1) % count
        taken.add(first + slot)
        result[host] = str(ipaddress.ip_address(first + slot))
    return result
