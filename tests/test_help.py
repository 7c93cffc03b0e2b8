"""Help where users look for it: a tooltip on every input of every node, and the node help pages
(``js/docs/<NodeId>.md``, built by ``scripts/help_pages.py``) up to date with the README's node
sections and the nodes' declarations; on a real server, the tooltips reach ``/object_info`` and
the pages are served where the current frontend's help panel fetches them."""
from __future__ import annotations

import glob
import os
import re
import sys
import urllib.request

import pytest

from harness import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import help_pages  # noqa: E402

MAX_TOOLTIP = 160  # characters: a tooltip is a line or two under the pointer, not a manual
# words that give a number input its unit or scale (pixels, fractions, steps, cells, ...)
UNIT = re.compile(r"pixel|px|fraction|step|cell|frame|per second|quality|times|row|chunk|\d\s*(-|\.\.|to)\s*-?\d|= ", re.I)
PACK_SOURCES = ("nodes", "core", "host", "controllers")


def _inputs(cls):
    declared = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in (declared.get(section) or {}).items():
            yield name, spec


def _readme() -> str:
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


@pytest.mark.host
def test_every_input_of_every_node_has_a_short_tooltip_with_unit(pack):
    problems = []
    count = 0
    for node_id, cls in sorted(pack.NODE_CLASS_MAPPINGS.items()):
        for name, spec in _inputs(cls):
            count += 1
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            tip = opts.get("tooltip")
            if not isinstance(tip, str) or not tip.strip():
                problems.append(f"{node_id}.{name}: no tooltip")
            elif len(tip) > MAX_TOOLTIP:
                problems.append(f"{node_id}.{name}: tooltip of {len(tip)} characters (at most {MAX_TOOLTIP})")
            elif spec[0] in ("INT", "FLOAT") and not UNIT.search(tip):
                problems.append(f"{node_id}.{name}: number input whose tooltip gives no unit or range: {tip!r}")
    assert count > 80, f"only {count} inputs found: the walk over INPUT_TYPES is broken"
    assert problems == [], "\n".join(problems)


@pytest.mark.host
def test_help_pages_are_up_to_date(pack):
    pages = help_pages.build(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS, _readme())
    assert set(pages) == {f"js/docs/{n}.md" for n in pack.NODE_CLASS_MAPPINGS}
    shipped = {os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "js", "docs", "*.md"))}
    assert shipped == set(pages), f"pages without a node or nodes without a page: {shipped ^ set(pages)}"
    for rel, text in pages.items():
        with open(os.path.join(REPO_ROOT, rel), encoding="utf-8") as f:
            assert f.read() == text, f"{rel} is stale: run `python scripts/help_pages.py`"


@pytest.mark.host
def test_every_page_has_the_readme_section_every_input_and_errors(pack):
    _, sections = help_pages.readme_sections(_readme())
    missing = sorted(set(pack.NODE_CLASS_MAPPINGS) - set(sections))
    assert missing == [], f"nodes without a README section (### Title (`NodeId`)): {missing}"
    pages = help_pages.build(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS, _readme())
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        page = pages[f"js/docs/{node_id}.md"]
        assert page.startswith(f"# {pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]}\n")
        assert sections[node_id][1] in page, f"{node_id}: the README section is not on the page"
        for name, spec in _inputs(cls):
            row = next((line for line in page.splitlines() if line.startswith(f"| `{name}`")), None)
            assert row, f"{node_id}: input {name} has no row on its page"
            assert spec[1]["tooltip"] in row.replace("\\|", "|")
            if spec[0] in ("INT", "FLOAT"):
                assert f"{spec[1]['min']:g} to {spec[1]['max']:g}" in row, row
        assert "## Common errors" in page and "/work" not in page


@pytest.mark.host
def test_text_limits_on_pages_are_the_enforced_ones(pack):
    from attention_motion.nodes import common, p2p

    pages = help_pages.build(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS, _readme())
    assert f"at most {common.MAX_TEXT_LENGTH} characters" in pages["js/docs/AttentionCapture.md"]
    p2p_page = pages["js/docs/P2PReplace.md"]
    assert f"at most {p2p.MAX_TARGETS} lines, each at most {p2p.MAX_PROMPT_CHARS} characters" in p2p_page
    assert "at most 2000 characters and 64 entries" in p2p_page
    assert "at most 20000 characters" in pages["js/docs/RegionAttention.md"]


def test_every_quoted_error_is_raised_by_the_code():
    """Each common error a page lists quotes a message the pack's code still contains."""
    sources = ""
    for folder in PACK_SOURCES:
        for path in glob.glob(os.path.join(REPO_ROOT, folder, "*.py")):
            with open(path, encoding="utf-8") as f:
                sources += f.read()
    stale = [(node, msg) for node, entries in help_pages.ERRORS.items() for msg, _ in entries if msg not in sources]
    assert stale == [], f"error quotes no longer in the code (update ERRORS in scripts/help_pages.py): {stale}"


def test_readme_sections_are_split_by_node_id():
    intro, sections = help_pages.readme_sections(_readme())
    assert intro.startswith("Every node checks each input")
    title, body = sections["LoadAttentionStore"]
    assert sections["SaveAttentionStore"] == (title, body) and title == "Save / Load Attention Store"
    assert "### " not in body and "## Workflows" not in body


# ------------------------------------------------------------------------------ real server

@pytest.mark.server
def test_object_info_of_the_real_server_carries_every_tooltip(comfy_server, pack):
    info = comfy_server.object_info()
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        served = info[node_id]["input"]
        for name, spec in _inputs(cls):
            section = "required" if name in (cls.INPUT_TYPES().get("required") or {}) else "optional"
            assert served[section][name][1]["tooltip"] == spec[1]["tooltip"], (node_id, name)


@pytest.mark.server
def test_help_pages_are_served_where_the_frontend_fetches_them(comfy_server, pack):
    """The current frontend fetches ``/extensions/<pack folder>/docs/<NodeId>.md`` and drops an
    answer whose content type is text/html (a fallback page); the pack folder is the module
    name in ``python_module`` when the host reports it."""
    info = comfy_server.object_info()
    module = info["TokenShift"].get("python_module", "custom_nodes.comfyui-attention-motion")
    folder = module.split(".", 1)[1].split("@")[0]
    for node_id in sorted(pack.NODE_CLASS_MAPPINGS):
        with urllib.request.urlopen(f"{comfy_server.url}/extensions/{folder}/docs/{node_id}.md", timeout=30) as resp:
            body, ctype = resp.read().decode("utf-8"), resp.headers.get("Content-Type", "")
        with open(os.path.join(REPO_ROOT, "js", "docs", node_id + ".md"), encoding="utf-8") as f:
            assert body == f.read(), node_id
        assert "text/html" not in ctype, (node_id, ctype)
