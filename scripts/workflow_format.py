"""ComfyUI workflow formats: tell UI from API JSON, convert UI -> API, apply overrides.

Standard library only (no ComfyUI import), so the headless runner and the tests share it.

* UI format (what the graph editor saves, LiteGraph ``version: 0.4``): ``{"nodes": [...],
  "links": [[id, from_node, from_slot, to_node, to_slot, type], ...], ...}``; each node keeps its
  widget values positionally in ``widgets_values``.
* API format (what ``POST /prompt`` takes): ``{"<id>": {"class_type": ..., "inputs": {name:
  value or [source_id, slot]}}}``.

Only the frontend converts UI to API; :func:`ui_to_api` mirrors what it does, using the host's
``GET /object_info`` for each node's widget order:

* widgets follow the node's widget inputs (required, then optional) in order; an INT named
  ``seed``/``noise_seed`` and any input declaring ``control_after_generate`` is followed by an
  extra control value ("fixed", "randomize", ...) that is not sent;
* an input converted to a socket keeps its widget slot; a link into it wins over the value,
  except a link from a PrimitiveNode, whose value is already stored in the widget;
* Note, MarkdownNote, Reroute and PrimitiveNode exist only in the frontend: they are dropped,
  and links through Reroutes are followed to the real source;
* muted nodes (mode 2) are dropped; a bypassed node (mode 4) is dropped and each consumer gets
  the bypassed node's input of the same type (the same slot first, then the first match).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
SEED_NAMES = ("seed", "noise_seed")
FRONTEND_ONLY = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
VIRTUAL_PASSTHROUGH = ("Reroute",)
MODE_MUTED = 2
MODE_BYPASSED = 4


class WorkflowError(ValueError):
    """A workflow cannot be read or converted; the message says which node and why."""


def is_api_format(data: Any) -> bool:
    """True for an API prompt: a dict of node dicts each carrying ``class_type``."""
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, dict) and "class_type" in v for v in data.values()))


def is_ui_format(data: Any) -> bool:
    """True for a graph-editor workflow (a dict with ``nodes`` and ``links`` lists)."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def load(path: str) -> dict:
    """Read a workflow file (UI or API format)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and "prompt" in data and is_api_format(data["prompt"]):
        data = data["prompt"]  # a saved POST /prompt body
    if not (is_api_format(data) or is_ui_format(data)):
        raise WorkflowError(f"{path}: neither a UI workflow (nodes/links) nor an API prompt (class_type per node)")
    return data


def _input_spec(spec: Any) -> tuple[Any, dict]:
    """(type, options) of one object_info input entry."""
    if isinstance(spec, (list, tuple)) and spec:
        kind = spec[0]
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        return kind, opts
    return spec, {}


def is_widget(spec: Any) -> bool:
    """Whether an object_info input entry becomes a widget in the frontend."""
    kind, opts = _input_spec(spec)
    if opts.get("forceInput") or opts.get("rawLink"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def has_control_value(name: str, spec: Any) -> bool:
    """Whether the frontend stores a "control after generate" value right after this widget."""
    kind, opts = _input_spec(spec)
    if opts.get("control_after_generate"):
        return True
    return kind == "INT" and name in SEED_NAMES


def widget_names(class_info: dict) -> list[tuple[str, bool]]:
    """``[(input name, followed by a control value)]`` in the frontend's widget order."""
    out = []
    inputs = class_info.get("input", {}) or {}
    order = class_info.get("input_order") or {}
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = order.get(section) or list(specs)
        for name in names:
            spec = specs.get(name)
            if spec is not None and is_widget(spec):
                out.append((name, has_control_value(name, spec)))
    return out


def _widget_values(node: dict, class_info: dict) -> dict:
    """Map a UI node's ``widgets_values`` to input names."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    if isinstance(values, dict):  # some frontends/extensions store them by name
        return {k: v for k, v in values.items() if k in dict(widget_names(class_info))}
    result, pos = {}, 0
    for name, control in widget_names(class_info):
        if pos >= len(values):
            raise WorkflowError(
                f"node {node.get('id')} ({node.get('type')}): widgets_values has {len(values)} entries but the host's "
                f"node has more widgets (missing '{name}'); the node's inputs changed: re-save the workflow")
        result[name] = values[pos]
        pos += 2 if control else 1
    return result


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI workflow to an API prompt the way the frontend does (see module doc)."""
    if not is_ui_format(ui):
        raise WorkflowError("not a UI workflow: expected 'nodes' and 'links'")
    nodes = {int(n["id"]): n for n in ui["nodes"]}
    links = {}
    for link in ui.get("links") or []:
        if isinstance(link, dict):  # newer serialisation
            lid, src, sslot, dst, dslot, ltype = (link["id"], link["origin_id"], link["origin_slot"],
                                                  link["target_id"], link["target_slot"], link.get("type"))
        else:
            lid, src, sslot, dst, dslot, ltype = link[:6]
        links[int(lid)] = (int(src), int(sslot), int(dst), int(dslot), ltype)

    def resolve(link_id: int, want_type: str, seen: int = 0) -> tuple[str, int] | None:
        """Follow a link through Reroutes and bypassed nodes to a real output (or None)."""
        if seen > len(nodes) + 1:
            raise WorkflowError("a cycle of Reroute/bypassed nodes")
        src, sslot, _dst, _dslot, _t = links[link_id]
        parent = nodes.get(src)
        if parent is None:
            raise WorkflowError(f"link {link_id} starts at node {src}, which is not in the workflow")
        ptype = parent.get("type")
        if ptype == "PrimitiveNode":
            return None  # its value is stored in the consumer's widget
        if ptype in VIRTUAL_PASSTHROUGH:
            up = (parent.get("inputs") or [{}])[0].get("link")
            return None if up is None else resolve(int(up), want_type, seen + 1)
        if ptype in FRONTEND_ONLY:
            return None
        if parent.get("mode", 0) == MODE_BYPASSED:
            pins = parent.get("inputs") or []
            for i in [sslot] + list(range(len(pins))):
                if i < len(pins) and pins[i].get("type") == want_type:
                    up = pins[i].get("link")
                    return None if up is None else resolve(int(up), want_type, seen + 1)
            raise WorkflowError(
                f"node {src} ({ptype}) is bypassed but has no {want_type} input to pass through")
        if parent.get("mode", 0) == MODE_MUTED:
            return None
        return (str(src), sslot)

    api = {}
    for nid in sorted(nodes):
        node = nodes[nid]
        ctype = node.get("type")
        if ctype in FRONTEND_ONLY or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        if ctype not in object_info:
            raise WorkflowError(f"node {nid}: type '{ctype}' is not known to the host (missing custom node?)")
        info = object_info[ctype]
        inputs: dict[str, Any] = dict(_widget_values(node, info))
        for pin in node.get("inputs") or []:
            if pin.get("link") is None:
                continue
            src = resolve(int(pin["link"]), pin.get("type"))
            if src is not None:
                inputs[pin["name"]] = [src[0], src[1]]
        api[str(nid)] = {"class_type": ctype, "inputs": inputs}
    return api


def parse_value(text: str) -> Any:
    """An override value: JSON when it parses (7, 0.5, true, "x", [..]), else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(api: dict, sets: Iterable[str]) -> dict:
    """Apply ``--set`` overrides to an API prompt in place and return it.

    ``NODE.INPUT=VALUE`` sets one node's input; ``INPUT=VALUE`` sets that input on every node
    that has it. The value is parsed as JSON when possible; an input that currently holds a
    string stays a string (``--set text=123`` gives "123"). Linked inputs cannot be overridden.
    """
    for item in sets:
        if "=" not in item:
            raise WorkflowError(f"--set {item!r}: expected NODE.INPUT=VALUE or INPUT=VALUE")
        key, raw = item.split("=", 1)
        key = key.strip()
        node_id, _, name = key.rpartition(".")
        if node_id and node_id not in api:
            raise WorkflowError(f"--set {item!r}: no node {node_id!r} in the workflow (nodes: {', '.join(api)})")
        targets = [node_id] if node_id else [k for k, v in api.items() if name in v.get("inputs", {})]
        if not targets:
            raise WorkflowError(f"--set {item!r}: no node has an input named {name!r}")
        for nid in targets:
            inputs = api[nid].setdefault("inputs", {})
            old = inputs.get(name)
            if isinstance(old, list) and len(old) == 2 and isinstance(old[0], str):
                raise WorkflowError(f"--set {item!r}: input {name!r} of node {nid} is a link, not a value")
            value = parse_value(raw)
            if isinstance(old, str) and not isinstance(value, str):
                value = raw
            inputs[name] = value
    return api
