#!/usr/bin/env python3
"""Write the shipped workflows from the small specs in ``scripts/workflow_specs.py``.

For each spec it writes

* ``workflows/<name>.json``: ComfyUI UI format (LiteGraph 0.4: laid out in columns, Note nodes
  explaining the inputs that matter), loadable by drag and drop;
* ``workflows/api/<name>.json``: the API-format twin for headless runs, derived from the UI
  file exactly as the frontend would (``scripts/workflow_format.ui_to_api``);
* ``example_workflows/<name>.json``: the same UI file, where hosts (2024-12 on) list a pack's
  templates.

Widget order and socket types come from a ComfyUI server's ``/object_info``:

    python scripts/build_workflows.py --server http://127.0.0.1:8188   # a server with the pack
    python scripts/build_workflows.py                                 # starts a test server

Without ``--server`` it starts a throwaway server from the test harness (the pack and the
test-only loader in its custom nodes). ``--check`` writes nothing and exits 1 if any file
would change.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)
import workflow_format  # noqa: E402
import workflow_specs  # noqa: E402

WORKFLOWS_DIR = os.path.join(REPO_ROOT, "workflows")
API_DIR = os.path.join(WORKFLOWS_DIR, "api")
TEMPLATES_DIR = os.path.join(REPO_ROOT, "example_workflows")

COLUMN_GAP, ROW_GAP, MARGIN = 60, 40, 40
NOTE_COLOR, NOTE_BG = "#432", "#653"


def _kind(spec):
    return workflow_format._input_spec(spec)


def _default(spec):
    kind, opts = _kind(spec)
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, list):
        return kind[0] if kind else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind, None)


def _widget_height(spec) -> int:
    kind, opts = _kind(spec)
    return 110 if kind == "STRING" and opts.get("multiline") else 24


def build_ui(spec: workflow_specs.Workflow, object_info: dict) -> dict:
    """UI-format workflow (LiteGraph 0.4) of one spec, laid out in columns."""
    nodes, links = [], []
    by_id = {n.id: n for n in spec.nodes}
    ui_nodes = {}
    for n in spec.nodes:
        if n.type == "Note":
            lines = sum(1 + len(line) // 48 for line in n.text.split("\n"))
            ui = {"id": n.id, "type": "Note", "pos": [0, 0], "size": [n.width or 380, 40 + 18 * lines],
                  "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [],
                  "properties": {"text": ""}, "widgets_values": [n.text], "color": NOTE_COLOR, "bgcolor": NOTE_BG}
            ui_nodes[n.id] = ui
            continue
        if n.type not in object_info:
            raise SystemExit(f"{spec.name}: node {n.id}: '{n.type}' is not known to the server")
        info = object_info[n.type]
        sections = info.get("input", {})
        all_inputs = {**(sections.get("required") or {}), **(sections.get("optional") or {})}
        unknown = set(n.widgets) | set(n.links)
        unknown -= set(all_inputs)
        if unknown:
            raise SystemExit(f"{spec.name}: node {n.id} ({n.type}) has no input(s) {sorted(unknown)}")
        values, height = [], 0
        for name, control in workflow_format.widget_names(info):
            values.append(n.widgets.get(name, _default(all_inputs[name])))
            height += _widget_height(all_inputs[name])
            if control:
                values.append("fixed")
                height += 24
        sockets = [{"name": name, "type": _kind(s)[0], "link": None}
                   for name, s in all_inputs.items() if not workflow_format.is_widget(s)]
        outputs = [{"name": (info.get("output_name") or info["output"])[i], "type": t, "links": [],
                    "slot_index": i} for i, t in enumerate(info.get("output", []))]
        wide = any(_widget_height(all_inputs[w]) > 24 for w, _ in workflow_format.widget_names(info))
        width = n.width or (400 if wide else 320)
        height += 30 + 20 * max(len(sockets), len(outputs), 0) + 10
        ui_nodes[n.id] = {"id": n.id, "type": n.type, "pos": [0, 0], "size": [width, height], "flags": {},
                          "order": 0, "mode": 0, "inputs": sockets, "outputs": outputs,
                          "properties": {"Node name for S&R": n.type}, "widgets_values": values}
        if n.title:
            ui_nodes[n.id]["title"] = n.title
    link_id = 0
    for n in spec.nodes:
        for name, (src, slot) in n.links.items():
            if src not in by_id or by_id[src].type == "Note":
                raise SystemExit(f"{spec.name}: node {n.id} input {name}: no source node {src}")
            link_id += 1
            dst = ui_nodes[n.id]
            pin = next(p for p in dst["inputs"] if p["name"] == name)
            out = ui_nodes[src]["outputs"][slot]
            pin["link"] = link_id
            out["links"].append(link_id)
            links.append([link_id, src, slot, n.id, dst["inputs"].index(pin), out["type"]])
    # topological order (what LiteGraph stores in "order")
    order, done = [], set()
    deps = {n.id: {src for src, _ in n.links.values()} for n in spec.nodes}
    while len(order) < len(spec.nodes):
        ready = [i for i in sorted(deps) if i not in done and deps[i] <= done]
        if not ready:
            raise SystemExit(f"{spec.name}: the graph has a cycle")
        order += ready
        done |= set(ready)
    for k, nid in enumerate(order):
        ui_nodes[nid]["order"] = k
    # layout: columns left to right, nodes stacked in spec order
    x = MARGIN
    for col in sorted({n.col for n in spec.nodes}):
        members = [ui_nodes[n.id] for n in spec.nodes if n.col == col]
        y = MARGIN
        for ui in members:
            ui["pos"] = [x, y]
            y += ui["size"][1] + ROW_GAP + 30
        x += max(ui["size"][0] for ui in members) + COLUMN_GAP
    nodes = [ui_nodes[n.id] for n in spec.nodes]
    for ui in nodes:
        for out in ui["outputs"]:
            if not out["links"]:
                out["links"] = None
    return {"last_node_id": max(by_id), "last_link_id": link_id, "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def outputs(object_info: dict) -> dict:
    """{path: text} of every file this script writes."""
    files = {}
    for spec in workflow_specs.available(object_info):
        ui = build_ui(spec, object_info)
        api = workflow_format.ui_to_api(ui, object_info)
        files[os.path.join(WORKFLOWS_DIR, spec.name + ".json")] = dump(ui)
        files[os.path.join(TEMPLATES_DIR, spec.name + ".json")] = dump(ui)
        files[os.path.join(API_DIR, spec.name + ".json")] = dump(api)
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="URL of a ComfyUI server that has the pack loaded")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    args = parser.parse_args(argv)
    server = None
    if args.server:
        import run_workflow
        info = run_workflow.get_json(args.server, "/object_info")
    else:
        sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
        import tempfile

        import server_harness
        from hostpath import host_path
        base = tempfile.mkdtemp(prefix="build_workflows_")
        server = server_harness.start(host_path(), server_harness.pack_custom_node_dirs(),
                                      os.path.join(base, "output"), work_dir=base)
        info = server.object_info()
    try:
        files = outputs(info)
    finally:
        if server is not None:
            server.stop()
    changed = []
    for path, text in sorted(files.items()):
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            changed.append(os.path.relpath(path, REPO_ROOT))
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    for spec in workflow_specs.SPECS:
        if spec not in workflow_specs.available(info):
            print(f"skipped {spec.name}: the server lacks {sorted(spec.node_types() - set(info))}")
    print(("would change: " if args.check else "wrote: ") + (", ".join(changed) or "nothing"))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
