# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Edit Istio's mesh config text (ConfigMap ``istio``, key ``mesh``): only our entries of the top-level
``caCertificates`` list change, every other byte (comments included) stays, and the result is verified by
parsing it back. Pure, no I/O."""

import re

from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import normalize_pem, pem_sha256
from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import yaml
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshConfigError, about, prefixed

FIELD = "ConfigMap istio key mesh"
_KEY_LINE = re.compile(r"^caCertificates\s*:")
_ITEM = re.compile(r"^ *-(\s|$)")


def load_mesh(text, cluster=None):
    """Parse mesh config text; invalid YAML or a non-mapping is an error, never an empty config."""
    if not (text or "").strip():
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MeshConfigError("%s is not valid YAML%s (%s); fix it, nothing was changed" % (FIELD, where, problem),
                              cluster=cluster, field=FIELD)
    if doc is not None and not isinstance(doc, dict):
        raise MeshConfigError("%s must be a mapping of mesh settings, not a %s; nothing was changed"
                              % (FIELD, type(doc).__name__), cluster=cluster, field=FIELD)
    return doc or {}


def trust_domain(mesh):
    return mesh.get("trustDomain") or "cluster.local"


def fingerprint(entry):
    """SHA-256 of a caCertificates entry's root, or None when it holds no readable certificate."""
    try:
        return pem_sha256(entry["pem"]) if isinstance(entry, dict) and isinstance(entry.get("pem"), str) else None
    except Exception:
        return None


def _dump(doc):
    """YAML with PEM blocks (multi-line strings) as literal scalars."""
    class LiteralDumper(yaml.SafeDumper):
        def represent_literal(self, data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    LiteralDumper.add_representer(str, LiteralDumper.represent_literal)
    return yaml.dump(doc, Dumper=LiteralDumper, sort_keys=False, default_flow_style=False, width=4096)


class _Unsafe(Exception):
    """The block cannot be edited without rewriting text that is not ours (the message says why)."""


def _block_region(lines):
    """``(start, stop)`` of the top-level caCertificates block (key line to its last content line), or None."""
    starts = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    if len(starts) > 1:
        raise _Unsafe("caCertificates appears %d times at the top level" % len(starts))
    if not starts:
        return None
    stop = starts[0] + 1
    for i in range(stop, len(lines)):
        stripped = lines[i].strip()
        if lines[i][:1] in (" ", "\t", "-") and stripped:
            stop = i + 1
        elif stripped and not stripped.startswith("#"):
            break
    return starts[0], stop


def _chunks(body):
    """``(indent, [(lead lines, item lines)], trailer)`` of a block sequence's lines: an item is its ``-`` line and
    every following line indented deeper; comment and blank lines before it, no deeper than its ``-``, its lead."""
    items, pending, indent = [], [], None
    for line in body:
        stripped = line.strip()
        depth = len(line) - len(line.lstrip(" "))
        if indent is None and _ITEM.match(line):
            indent = depth
        if indent is not None and depth == indent and _ITEM.match(line):
            items.append((pending, [line]))
            pending = []
        elif not stripped or (stripped.startswith("#") and (indent is None or depth <= indent)):
            pending.append(line)
        elif indent is not None and depth > indent and items:
            items[-1][1].extend(pending + [line])
            pending = []
        else:
            raise _Unsafe("caCertificates holds a line that is not a list item: %r" % line.strip()[:60])
    return indent or 0, items, pending


def _item_entry(lines, indent):
    """The entry one item's lines hold, parsed on their own (None when they do not parse alone)."""
    text = "".join(line[indent:] if line[:indent].strip() == "" else line for line in lines)
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return parsed[0] if isinstance(parsed, list) and len(parsed) == 1 else None


def _splice(text, current, entries):
    """``text`` with caCertificates ``entries``: a kept entry keeps its item's text byte for byte, a new one is
    rendered in the block's indentation, a dropped one leaves its leading comments at the block's end; else _Unsafe."""
    lines = text.splitlines(True)
    region = _block_region(lines)
    if region is None:
        if text.lstrip().startswith("{"):
            raise _Unsafe("the mesh config is written as one flow-style mapping ({...})")
        if not entries:
            return text
        prefix = text if (not text or text.endswith("\n")) else text + "\n"
        return prefix + _dump({"caCertificates": entries})
    start, stop = region
    head = lines[start]
    value = re.sub(r"(^|\s)#.*$", "", head.split(":", 1)[1]).strip()  # on the key line, comment stripped
    if value not in ("", "[]", "null", "~"):
        raise _Unsafe("caCertificates is written in flow style (%s) and holds entries that are not ours"
                      % (value[:40] + ("..." if len(value) > 40 else "")))
    indent, items, trailer = _chunks(lines[start + 1:stop])
    parsed = [_item_entry(item, indent) for _lead, item in items]
    if parsed != list(current):
        raise _Unsafe("an item of caCertificates does not parse on its own (anchors, aliases or tags across items)")
    used, body = set(), []
    for entry in entries:
        index = next((i for i, p in enumerate(parsed) if i not in used and p == entry), None)
        if index is None:
            body.append("".join(" " * indent + line for line in _dump([entry]).splitlines(True)))
        else:
            used.add(index)
            body.extend(items[index][0] + items[index][1])
    for index, (lead, _item) in enumerate(items):
        if index not in used and any(line.strip() for line in lead):
            body.extend(lead)
    body += trailer
    if not entries and not any(line.strip() for line in body) and "#" not in head:
        return "".join(lines[:start] + lines[stop:])  # nothing left, and nothing of the user's: the block goes
    if value and entries:  # "caCertificates: []" (or null) becomes a block sequence; its comment stays
        rest = head.split(":", 1)[1]
        head = "caCertificates:" + rest[rest.index(value) + len(value):]
    return "".join(lines[:start] + [head] + body + lines[stop:])


def update_ca_certificates(text, cluster, desired, managed, preserve_peers=(), configmap="istio"):
    """Converge our caCertificates entries: ``(new_text, new_managed, changed, warnings)``. ``desired``: ``[{"pem",
    "trustDomains", "peer"}]``; ``managed``: ``{sha256: "peer[,peer]"}`` written before. The user's entries, and ours
    of ``preserve_peers``, keep their text byte for byte; an edit that cannot be so is an error (never a rewrite)."""
    text = text or ""
    with about(cluster):
        doc = load_mesh(text)
        current = [] if doc.get("caCertificates") is None else doc["caCertificates"]
        if not isinstance(current, list):
            raise MeshConfigError("%s: caCertificates is a %s, not a list; nothing was changed"
                                  % (FIELD, type(current).__name__), field=FIELD)
        user_entries, user_fps, ours, preserve = [], set(), {}, set(preserve_peers or ())
        for entry in current:
            fp = fingerprint(entry)
            if fp and fp in managed:  # ours: kept only while its peer is preserved
                peers = set(str(managed[fp]).split(",")) & preserve
                if peers:
                    ours[fp] = {"peers": peers, "entry": entry}
            else:
                user_entries.append(entry)
                user_fps.add(fp)  # None (no readable root) never matches a desired root
        new_managed, rendered, warnings = merge_roots(ours, desired, user_fps)
        warnings = [prefixed(cluster, w) for w in warnings]
        new_list = user_entries + rendered
        if new_list == current:
            return text, new_managed, False, warnings
        try:
            new_text = _splice(text, current, new_list)
            try:
                new_doc = load_mesh(new_text)
            except MeshConfigError:
                new_doc = None
            same = new_doc is not None and dict(new_doc, caCertificates=None) == dict(doc, caCertificates=None)
            if not same or (new_doc.get("caCertificates") or []) != new_list:
                raise _Unsafe("the edited text does not parse back to the same settings")
        except _Unsafe as exc:
            raise MeshConfigError(
                "ConfigMap %s key mesh: cannot add or remove the peers' roots in caCertificates without rewriting "
                "text that is not ours (%s): the comments and formatting of the entries and settings there would "
                "be lost. Nothing was changed; write caCertificates as a block list (\"- pem: ...\" items) or use "
                "trust_mode: values" % (configmap, exc), field=FIELD)
    return new_text, new_managed, True, warnings


def merge_roots(ours, desired, user_fps):
    """Add the desired roots to ``ours`` (``{fp: slot}``, one slot per fingerprint): ``(new_managed, entries,
    warnings)``, the entries by peers then fingerprint, a preserved slot's as found."""
    warnings = []
    for item in desired:
        pem = normalize_pem(item["pem"])
        fp = pem_sha256(pem)
        if fp in user_fps:
            warnings.append("%s: the root of %s (sha256 %s) is already in caCertificates, added by someone "
                            "else; left as it is and not managed by meshfed.istio" % (FIELD, item["peer"], fp))
            continue
        slot = ours.get(fp) or {}
        if "trustDomains" not in slot:  # new, or preserved as found: rendered afresh from now on
            domains = set(slot.get("entry", {}).get("trustDomains") or [])
            slot = ours[fp] = {"peers": set(slot.get("peers", ())), "pem": pem, "trustDomains": domains}
        slot["peers"].add(item["peer"])
        slot["trustDomains"].update(item.get("trustDomains") or [])
    new_managed, rendered = {}, []
    for fp, slot in sorted(ours.items(), key=lambda kv: (sorted(kv[1]["peers"]), kv[0])):
        new_managed[fp] = ",".join(sorted(slot["peers"]))
        rendered.append({"pem": slot["pem"], "trustDomains": sorted(slot["trustDomains"])}
                        if "trustDomains" in slot else slot["entry"])
    return new_managed, rendered, warnings


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
