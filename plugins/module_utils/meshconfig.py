# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit Istio's mesh config text (ConfigMap ``istio``, key ``mesh``) without damaging it.

Only the top-level ``caCertificates`` list is touched, and inside it only the entries this
collection added (tracked by fingerprint by the caller). Everything else, comments included,
stays byte for byte: the edit replaces the text of the ``caCertificates`` block alone and is
verified by parsing the result. Pure functions, no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import traceback

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.meshfed.istio.plugins.module_utils.certs import normalize_pem, pem_sha256

FIELD = "ConfigMap istio key mesh"
_KEY_LINE = re.compile(r"^caCertificates\s*:")


class MeshConfigError(Exception):
    pass


def load_mesh(text, cluster):
    """Parse mesh config text; invalid YAML or a non-mapping is an error, never an empty config."""
    if not (text or "").strip():
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MeshConfigError("%s: %s is not valid YAML%s (%s); fix it, nothing was changed"
                              % (cluster, FIELD, where, problem))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MeshConfigError("%s: %s must be a mapping of mesh settings, not a %s; nothing was changed"
                              % (cluster, FIELD, type(doc).__name__))
    return doc


def trust_domain(mesh):
    return mesh.get("trustDomain") or "cluster.local"


def _fingerprint(entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("pem"), str):
        return None
    try:
        return pem_sha256(entry["pem"])
    except Exception:
        return None


class _LiteralDumper(yaml.SafeDumper if HAS_YAML else object):
    pass


def _str_representer(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


if HAS_YAML:
    _LiteralDumper.add_representer(str, _str_representer)


def _render_block(entries):
    return yaml.dump({"caCertificates": entries}, Dumper=_LiteralDumper, sort_keys=False,
                     default_flow_style=False, width=4096)


def _splice(text, entries):
    """Replace (or add, or remove) the top-level caCertificates block in ``text``; None if unsafe."""
    lines = text.splitlines(True)
    starts = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    if len(starts) > 1:
        return None
    block = _render_block(entries) if entries else ""
    if not starts:
        if not entries:
            return text
        prefix = text if (not text or text.endswith("\n")) else text + "\n"
        return prefix + block
    start = starts[0]
    end = start + 1
    last_content = start
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if line[:1] in (" ", "\t", "-") and stripped:
            last_content = end
        elif stripped and not stripped.startswith("#"):
            break
        end += 1
    return "".join(lines[:start]) + block + "".join(lines[last_content + 1:])


def update_ca_certificates(text, cluster, desired, managed, preserve_peers=()):
    """Converge our entries of ``caCertificates``.

    ``desired``: ``[{"pem", "trustDomains", "peer"}]``; ``managed``: ``{sha256: peer}`` of entries
    written before (peers comma-joined when several share a root). Entries not in ``managed`` are
    the user's and are kept as they are; ours of peers in ``preserve_peers`` are kept too.
    Returns ``(new_text, new_managed, changed, warnings)``; ``new_text is text`` when unchanged.
    """
    text = text or ""
    doc = load_mesh(text, cluster)
    current = doc.get("caCertificates")
    if current is None:
        current = []
    if not isinstance(current, list):
        raise MeshConfigError("%s: %s: caCertificates is a %s, not a list; nothing was changed"
                              % (cluster, FIELD, type(current).__name__))
    preserve = set(preserve_peers or ())
    warnings = []
    user_entries = []
    user_fps = set()
    ours = {}
    for entry in current:
        fp = _fingerprint(entry)
        if fp and fp in managed:
            peers = set(str(managed[fp]).split(","))
            if peers & preserve:
                ours[fp] = {"peers": peers & preserve, "entry": entry}
            continue
        user_entries.append(entry)
        if fp:
            user_fps.add(fp)
    for item in desired:
        pem = normalize_pem(item["pem"])
        fp = pem_sha256(pem)
        if fp in user_fps:
            warnings.append("%s: %s: the root of %s (sha256 %s) is already in caCertificates, added by someone "
                            "else; left as it is and not managed by meshfed.istio" % (cluster, FIELD, item["peer"], fp))
            continue
        slot = ours.get(fp)
        if slot is None or "trustDomains" not in slot:
            kept_domains = list((slot or {}).get("entry", {}).get("trustDomains") or [])
            slot = ours[fp] = {"peers": set((slot or {}).get("peers", ())), "pem": pem, "trustDomains": kept_domains}
        slot["peers"].add(item["peer"])
        for domain in item.get("trustDomains") or []:
            if domain not in slot["trustDomains"]:
                slot["trustDomains"].append(domain)
    rendered = []
    new_managed = {}
    for fp, slot in sorted(ours.items(), key=lambda kv: (sorted(kv[1]["peers"]), kv[0])):
        new_managed[fp] = ",".join(sorted(slot["peers"]))
        if "trustDomains" in slot:
            rendered.append({"pem": slot["pem"], "trustDomains": sorted(slot["trustDomains"])})
        else:
            rendered.append(slot["entry"])  # preserved as found
    new_list = user_entries + rendered
    if new_list == current:
        return text, new_managed, False, warnings
    new_text = _splice(text, new_list)
    if new_text is None or not _verified(new_text, doc, new_list):
        fallback = dict(doc)
        if new_list:
            fallback["caCertificates"] = new_list
        else:
            fallback.pop("caCertificates", None)
        new_text = yaml.dump(fallback, Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False, width=4096)
        warnings.append("%s: %s could not be edited in place (unusual layout); it was rewritten with every "
                        "setting kept but comments and formatting lost" % (cluster, FIELD))
        if not _verified(new_text, doc, new_list):  # pragma: no cover - yaml round trip failed
            raise MeshConfigError("%s: %s: could not produce a mesh config equal to the current one plus the "
                                  "new caCertificates; nothing was changed" % (cluster, FIELD))
    return new_text, new_managed, True, warnings


def _verified(new_text, old_doc, new_list):
    try:
        new_doc = yaml.safe_load(new_text) or {}
    except yaml.YAMLError:
        return False
    if not isinstance(new_doc, dict):
        return False
    rest_new = dict((k, v) for k, v in new_doc.items() if k != "caCertificates")
    rest_old = dict((k, v) for k, v in old_doc.items() if k != "caCertificates")
    return rest_new == rest_old and (new_doc.get("caCertificates") or []) == new_list


def check_multiroot(mesh, istiod_env):
    """Warnings when peer roots in caCertificates would not take effect."""
    warnings = []
    if istiod_env is None:
        warnings.append("istiod Deployment not found; make sure istiod runs with ISTIO_MULTIROOT_MESH=true, "
                        "or peer roots in caCertificates are ignored")
    elif str(istiod_env.get("ISTIO_MULTIROOT_MESH", "")).lower() != "true":
        warnings.append("istiod does not set ISTIO_MULTIROOT_MESH=true: peer roots in caCertificates are ignored "
                        "until it does (set pilot.env.ISTIO_MULTIROOT_MESH=true in your Istio install)")
    metadata = ((mesh or {}).get("defaultConfig") or {}).get("proxyMetadata") or {}
    if str(metadata.get("PROXY_CONFIG_XDS_AGENT", "")).lower() != "true":
        warnings.append("proxies do not set PROXY_CONFIG_XDS_AGENT=true (meshConfig.defaultConfig.proxyMetadata): "
                        "sidecars will not receive peer roots until they do")
    return warnings
