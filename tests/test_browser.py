"""Tier 4: the real ComfyUI frontend in headless Chromium, driven by Selenium, on a real server.

Needs Debian's ``chromium`` and ``chromedriver`` (``.ci/run`` installs them) and the Python
``selenium`` package (requirements-dev.txt). Outside CI the tests skip with the reason when
Chromium is missing; in CI (``CI=true``) they fail instead.

Every test runs once per frontend variant (the test id's suffix):

* ``bundled``: the frontend the host serves by itself (the pinned 2024 host: its ``web/``
  folder; the 2025 host: the ``comfyui-frontend-package`` of its venv), classic canvas;
* ``1.58.1-classic`` and ``1.58.1-vue``: the newest frontend, ``comfyui-frontend-package``
  1.58.1, served with ``--front-end-root`` from ``.host/frontend-1.58.1`` (installed there by
  ``scripts/bootstrap.py --lane v0.3.75``; ``ATTENTION_MOTION_FRONTEND_1_58_1`` names another
  folder), once with the classic canvas and once with ``Comfy.VueNodes.Enabled`` ("Nodes
  2.0": every node drawn as HTML). They run on hosts that serve frontend packages (the
  v0.3.75 lane), where a missing 1.58.1 folder fails the tests; see ``_frontend_variants``.

One server per frontend (the two 1.58.1 variants share one), one browser per variant. On hosts
with ``--user-directory`` each server gets its own user folder, whose settings are written
before the page loads (first-run templates dialog off, the variant's renderer).

Drags and clicks are real pointer events at the screen position where the frontend shows the
widget (classic: the node's widget slot on the LiteGraph canvas; Nodes 2.0: the widget's
element in the node), and the tests then read the node's widget values.

Screenshots of the token view, the motion path widget, the region boxes and the previews go to
the test's temp folder, one folder per variant (``screenshots-<variant>``), and, for the
bundled frontend, the first three to ``docs/`` when ``UPDATE_SCREENSHOTS=1``.
"""
import collections
import glob
import io
import json
import os
import shutil
import tempfile
import time
import urllib.request

import pytest

import harness
import server_harness

pytestmark = pytest.mark.browser

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
EXT_PATH = "/extensions/comfyui-attention-motion/"
EXTENSION = "attention_motion"
FRONTEND_ONLY = {"Note", "Reroute", "PrimitiveNode", "MarkdownNote"}

NEWEST = "1.58.1"
NEWEST_ENV = "ATTENTION_MOTION_FRONTEND_1_58_1"
# where the graph's origin sits on the page (client px): below the top bars and right of the
# side bar of the current frontends, so nothing of theirs covers the nodes under test
STAGE = (90, 150)

Variant = collections.namedtuple("Variant", "id frontend vue")
BUNDLED = Variant("bundled", None, False)
NEWEST_CLASSIC = Variant(NEWEST + "-classic", NEWEST, False)
NEWEST_VUE = Variant(NEWEST + "-vue", NEWEST, True)


def _host_options():
    """Server options of the lane's host (read from its argument parser, no server needed)."""
    harness.setup_host()
    import comfy.cli_args
    return set(vars(comfy.cli_args.args))


HOST_OPTIONS = _host_options()
HOST_SERVES_PACKAGES = "front_end_root" in HOST_OPTIONS  # hosts since 2024-08 (v0.3.75 lane)
HOST_USER_DIRECTORY = "user_directory" in HOST_OPTIONS


def _frontend_variants():
    if HOST_SERVES_PACKAGES:
        return [BUNDLED, NEWEST_CLASSIC, NEWEST_VUE]
    # The 1.58.1 variants are deselected on this host (the pinned lane, ComfyUI a28a9dc8 of
    # 2024-03): it serves the frontend of its own web/ folder and has no --front-end-root, and
    # the 1.58.1 frontend does not boot against its 2024 server (which has none of the
    # /api-prefixed routes that frontend calls, nor /features). They run on the v0.3.75 lane.
    return [BUNDLED]


VARIANTS = _frontend_variants()


def newest_frontend_root():
    """The ``static`` folder of comfyui-frontend-package 1.58.1 (fails the test when missing)."""
    base = os.environ.get(NEWEST_ENV) or os.path.join(REPO_ROOT, ".host", "frontend-" + NEWEST)
    for cand in (base, os.path.join(base, "comfyui_frontend_package", "static")):
        if os.path.isfile(os.path.join(cand, "index.html")):
            return os.path.abspath(cand)
    pytest.fail(f"comfyui-frontend-package=={NEWEST} is not installed in {base} (this host serves frontend "
                f"packages, so the {NEWEST} variants must run): run `python3 scripts/bootstrap.py --lane v0.3.75` "
                f"(or `make bootstrap LANE=v0.3.75`), or point {NEWEST_ENV} at a folder holding it", pytrace=False)


def _find_browser():
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver (chromium-driver)", driver)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package")
    return chromium, driver, missing


def _unavailable(reason):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("browser tier cannot run in CI: " + reason)
    pytest.skip(reason)


# ------------------------------------------------------------------------------ fixtures

class _FrontendServers:
    """One running server per frontend: started when a variant first needs it, stopped when the
    next variant needs another frontend (variants run one after the other) or at module end."""

    def __init__(self, base):
        self.base = base
        self.key = self.server = None

    def get(self, frontend):
        if self.server is not None and self.key == frontend and self.server.alive():
            return self.server
        self.close()
        work = os.path.join(self.base, "server-" + (frontend or "bundled"))
        os.makedirs(work, exist_ok=True)
        args = []
        if HOST_USER_DIRECTORY:
            user = os.path.join(work, "user")  # settings of this server only, never the host's
            os.makedirs(user, exist_ok=True)
            args += ["--user-directory", user]
        if frontend:
            args += ["--front-end-root", newest_frontend_root()]
        server = server_harness.start(harness.setup_host(), server_harness.pack_custom_node_dirs(),
                                      os.path.join(work, "output"), work_dir=work, extra_args=args)
        info = server.object_info()
        if "AttentionCapture" not in info or "TinyCheckpointLoader" not in info:
            server.stop()
            raise RuntimeError("the server did not load the pack and tests/tiny_host_nodes:\n" + server.log_tail())
        self.key, self.server = frontend, server
        return server

    def close(self):
        if self.server is not None:
            self.server.stop()
        self.key = self.server = None


@pytest.fixture(scope="module")
def _servers(tmp_path_factory):
    servers = _FrontendServers(str(tmp_path_factory.mktemp("frontend_servers")))
    yield servers
    servers.close()


def _post_settings(server, settings):
    req = urllib.request.Request(server.url + "/settings", data=json.dumps(settings).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.status


def _variant_settings(variant):
    """User settings written before the page loads (names the frontends that lack them ignore)."""
    return {
        "Comfy.TutorialCompleted": True,  # else: blank workflow + the templates dialog over the page
        "Comfy.VueNodes.Enabled": variant.vue,
        "Comfy.Minimap.Visible": False,
        "Comfy.Notification.ShowVersionUpdates": False,
        "Comfy.VersionCompatibility.DisableWarnings": True,
        # the shipped workflows name checkpoints the tests do not have: no dialog or toast for them
        "Comfy.Workflow.ShowMissingModelsWarning": False,
        "Comfy.ErrorSystem.ShowMissingModels": False,
    }


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def browser(request, _servers, tmp_path_factory):
    variant = request.param
    chromium, driver_path, missing = _find_browser()
    if missing:
        _unavailable("not installed: " + ", ".join(missing) + " (apt-get install chromium chromium-driver; pip install selenium)")
    server = _servers.get(variant.frontend)  # started only when a browser is there
    if HOST_USER_DIRECTORY:
        _post_settings(server, _variant_settings(variant))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="am_chromium_")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1800", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(120)
    try:
        # the 2025 frontends' "Introducing Nodes 2.0" banner (a browser-side flag) would shift the
        # page down by its height a few seconds after load, under a drag in progress
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
            "source": "try { localStorage.setItem('vueNodesBannerDismissed', 'true'); } catch (e) {}"})
        driver.get(server.url)
        _wait(driver, "return !!(window.app && window.app.graph && window.LiteGraph && "
                      "LiteGraph.registered_node_types['AttentionCapture'] && "
                      "app.extensions && app.extensions.some(e => e.name === 'attention_motion'))",
              120, f"[{variant.id}] the frontend did not load the pack's nodes and extension")
        _settle_page(driver, variant)
        driver.shots = tmp_path_factory.mktemp("screenshots-" + variant.id)
        driver.server, driver.variant = server, variant
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def server(browser):
    """The server the variant's browser talks to."""
    return browser.server


def _settle_page(driver, variant):
    """The page as a user starts working: the variant's renderer, no dialog, a still layout."""
    vue_now = driver.execute_script("return !!LiteGraph.vueNodesMode;")
    if vue_now != variant.vue:
        # the settings route did not take (another frontend): switch through the settings API
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.resolve(app.extensionManager?.setting?.set('Comfy.VueNodes.Enabled', arguments[0]))"
            ".then(() => done(true), (e) => done(String(e)));", variant.vue)
    _wait(driver, "return !!LiteGraph.vueNodesMode === arguments[0];", 30,
          f"[{variant.id}] the frontend did not switch Nodes 2.0 {'on' if variant.vue else 'off'}", variant.vue)
    if variant.frontend:
        assert driver.execute_script("return window.__COMFYUI_FRONTEND_VERSION__;") == variant.frontend
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + 30
    while time.monotonic() < deadline:
        driver.execute_script(_CLOSE_DIALOGS)
        rect = driver.execute_script("const r = app.canvas.canvas.getBoundingClientRect();"
                                     f"return [r.left, r.top, r.width, r.height, {_MODAL}.length > 0];")
        if rect != last:
            last, stable_since = rect, time.monotonic()
        elif not rect[4] and time.monotonic() - stable_since > 1.5:
            return
        time.sleep(0.25)
    raise AssertionError(f"[{variant.id}] the page did not settle (canvas rect, open dialog): {last}; dialogs: "
                         + str(driver.execute_script(_DIALOG_TEXTS)))


# dialogs that cover the page (PrimeVue masks, Reka / ARIA dialogs, the 2024 frontend's modal)
_MODAL = "[...document.querySelectorAll(\".p-dialog-mask, [role=dialog], .comfy-modal\")].filter(d => d.getClientRects().length)"
_DIALOG_TEXTS = f"return {_MODAL}.map(d => d.className + ': ' + (d.innerText || '').slice(0, 200));"
_CLOSE_DIALOGS = f"""for (const d of {_MODAL}) {{
    const close = d.querySelector('button[aria-label=Close], .p-dialog-close-button, .p-dialog-header-close');
    if (close) close.click(); else document.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Escape', bubbles: true}}));
}}"""


def _wait(driver, script, timeout, what, *args):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = driver.execute_script(script, *args)
        if last:
            return last
        time.sleep(0.2)
    tokens = driver.execute_script(_TOKEN_STATE, *args[:1]) if args and isinstance(args[0], int) else None
    raise AssertionError(f"{what} (waited {timeout} s; last: {last!r}; token view: {tokens!r})")


# The token view's state (for failure messages): its status and text.
_TOKEN_STATE = """
const w = app.graph.getNodeById(arguments[0])?.widgets?.find(w => w.name === 'attention_motion_tokens');
return w ? {status: w.element.dataset.status, text: w.element.textContent.slice(0, 300), value: app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'prompt')?.value} : null;
"""


def _console_errors(driver):
    """SEVERE console entries that come from this pack's extension (drained on read)."""
    logs = driver.get_log("browser")
    return [e for e in logs if e["level"] == "SEVERE" and ("attention_motion" in e["message"] or EXT_PATH in e["message"])], logs


# --------------------------------------------------------------------------- graph helpers

def _fresh_graph(driver, scale=1.0):
    """An empty graph whose origin is at STAGE on the page."""
    driver.execute_script(
        """const [sx, sy, scale] = arguments;
        app.graph.clear();
        const c = app.canvas.canvas.getBoundingClientRect();
        app.canvas.ds.scale = scale;
        app.canvas.ds.offset = [(sx - c.left) / scale, (sy - c.top) / scale];
        app.graph.setDirtyCanvas(true, true);""", STAGE[0], STAGE[1], scale)


def _add_node(driver, node_type, pos, size=None, values=None):
    """Add a node like the user would (createNode + graph.add); returns its id."""
    return driver.execute_script(
        """const [type, pos, size, values] = arguments;
        const node = LiteGraph.createNode(type);
        node.pos = pos;
        app.graph.add(node);
        if (size) node.setSize(size);
        for (const [k, v] of Object.entries(values || {})) {
            const w = node.widgets.find(w => w.name === k);
            w.value = v;
            if (w.element && 'value' in w.element && w.element.value !== v) w.element.value = v;
            w.callback?.(w.value);
        }
        app.graph.setDirtyCanvas(true, true);
        return node.id;""", node_type, pos, size, values or {})


def _widget(driver, node_id, name):
    return driver.execute_script("return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === arguments[1]).value;",
                                 node_id, name)


# Where the frontend shows a node's widget (client px [left, top, width, height]): classic, the
# widget's slot in the node on the LiteGraph canvas; Nodes 2.0, the widget's element in the node.
_WIDGET_AREA = """
const [id, name] = arguments;
const n = app.graph.getNodeById(id);
const w = n.widgets.find(w => w.name === name);
if (LiteGraph.vueNodesMode) {
    const slot = document.querySelector(`[data-node-id="${id}"] [data-widget-name="${name}"]`);
    if (!slot) return null;
    const r = slot.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height];
}
const c = app.canvas.canvas.getBoundingClientRect();
const ds = app.canvas.ds;
const y = w.y ?? w.last_y;
const h = w.computedHeight ?? (w.element ? w.element.getBoundingClientRect().height / ds.scale + 20 : null);
if (y == null || h == null) return null;
return [(n.pos[0] + ds.offset[0]) * ds.scale + c.left, (n.pos[1] + y + ds.offset[1]) * ds.scale + c.top,
        n.size[0] * ds.scale, h * ds.scale];
"""


def _assert_hits_widget(driver, node_id, name, x, y):
    """(x, y) is on the widget where the frontend shows it, and nothing of the page covers it."""
    area = driver.execute_script(_WIDGET_AREA, node_id, name)
    assert area, f"widget {name} of node {node_id} is not shown"
    left, top, width, height = area
    assert left - 1 <= x <= left + width + 1 and top - 1 <= y <= top + height + 1, \
        f"({x:.0f}, {y:.0f}) is outside widget {name}'s place in the node {area}"
    hit = driver.execute_script(
        """const [id, name, x, y] = arguments;
        const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
        const e = document.elementFromPoint(x, y);
        if (e && w.element.contains(e)) return true;
        const path = []; for (let p = e; p && path.length < 5; p = p.parentElement) path.push(p.tagName + '.' + p.className);
        return path.join(' < ');""", node_id, name, x, y)
    assert hit is True, f"({x:.0f}, {y:.0f}) on widget {name} is covered by {hit}"


def _drag(driver, node_id, name, handle, target):
    """Press at the handle, move in three steps to target, release: real pointer events."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_MOUSE
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    x0, y0 = handle["clientX"], handle["clientY"]
    _assert_hits_widget(driver, node_id, name, x0, y0)
    builder = ActionBuilder(driver, mouse=PointerInput(POINTER_MOUSE, "mouse"))
    builder.pointer_action.move_to_location(int(round(x0)), int(round(y0)))
    builder.pointer_action.pointer_down()
    for t in (0.3, 0.7, 1.0):
        builder.pointer_action.move_to_location(int(round(x0 + (target[0] - x0) * t)), int(round(y0 + (target[1] - y0) * t)))
    builder.pointer_action.pointer_up()
    builder.perform()


def _click(driver, node_id, name, x, y, double=False, alt=False):
    """A click (or double-click, with Alt held if asked) at (x, y) on a widget."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _assert_hits_widget(driver, node_id, name, x, y)
    chain = ActionChains(driver)
    if alt:
        chain.key_down(Keys.ALT)
    chain.w3c_actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    chain.w3c_actions.key_action.pause()
    chain.double_click() if double else chain.click()
    if alt:
        chain.key_up(Keys.ALT)
    chain.perform()


# the text box of a node's widget as the page shows it now (found anew on every call)
_TEXT_INPUT = """
const [id, name] = arguments;
if (LiteGraph.vueNodesMode)
    return document.querySelector(`[data-node-id="${id}"] [data-widget-name="${name}"] textarea, ` +
                                  `[data-node-id="${id}"] [data-widget-name="${name}"] input`);
const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
const e = w.element ?? w.inputEl;
return e && e.isConnected && e.offsetParent !== null ? e : null;
"""


def _type(driver, node_id, name, text):
    """Type into a node's text widget like a user: click into it, clear it, type.

    The element is looked up again for every attempt: the current frontends re-render a node's
    widgets (Nodes 2.0) and replace the graph's DOM on graph changes, so an element found before
    is stale."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(4):
        area = _wait(driver, _TEXT_INPUT, 20, f"text box of {name} on node {node_id} not shown", node_id, name)
        try:
            area.click()
            area.clear()
            area.send_keys(text)
            break
        except StaleElementReferenceException:
            if attempt == 3:
                raise
            time.sleep(0.3)
    _wait(driver, "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === arguments[1]).value === arguments[2];",
          10, f"typing into {name} did not reach the widget value", node_id, name, text)


def _node_shot(driver, node_id, name, docs=True):
    """PNG of one node (its title bar to its bottom, with DOM widgets), cropped from the page."""
    from PIL import Image

    driver.execute_script("app.graph.setDirtyCanvas(true, true); app.canvas.draw(true, true);")
    time.sleep(0.4)
    rect = driver.execute_script(
        """const n = app.graph.getNodeById(arguments[0]);
        const el = LiteGraph.vueNodesMode && document.querySelector(`[data-node-id="${arguments[0]}"]`);
        if (el) { const r = el.getBoundingClientRect(); return [r.left - 6, r.top - 6, r.width + 12, r.height + 12, window.devicePixelRatio]; }
        const c = app.canvas.canvas.getBoundingClientRect();
        const ds = app.canvas.ds;
        const th = LiteGraph.NODE_TITLE_HEIGHT;
        const x = (n.pos[0] + ds.offset[0]) * ds.scale + c.left;
        const y = (n.pos[1] - th + ds.offset[1]) * ds.scale + c.top;
        return [x - 6, y - 6, n.size[0] * ds.scale + 12, (n.size[1] + th) * ds.scale + 12, window.devicePixelRatio];""",
        node_id)
    x, y, w, h, dpr = rect
    img = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
    crop = img.crop(tuple(int(round(v * dpr)) for v in (x, y, x + w, y + h))).convert("RGB")
    paths = [os.path.join(str(driver.shots), name)]
    if docs and driver.variant is BUNDLED and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        paths.append(os.path.join(REPO_ROOT, "docs", name))
    for p in paths:
        crop.save(p, optimize=True)
    return crop


def _status_line(driver, node_id, name):
    """Geometry of a drawing widget's status line against its widget."""
    return driver.execute_script(
        """const w = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === arguments[1]);
        const s = w.element.querySelector('.am-status');
        const b = w.element.getBoundingClientRect(), r = s.getBoundingClientRect(), cs = getComputedStyle(s);
        return {text: s.textContent, title: s.title, height: r.height, line: parseFloat(cs.lineHeight),
                inside: r.left >= b.left - 0.5 && r.right <= b.right + 0.5 && r.bottom <= b.bottom + 0.5,
                clipped: s.scrollWidth > s.clientWidth, ellipsis: cs.textOverflow === 'ellipsis' && cs.whiteSpace === 'nowrap'};""",
        node_id, name)


def _assert_status_fits(driver, node_id, name):
    s = _status_line(driver, node_id, name)
    assert s["text"] and s["title"] == s["text"], s
    assert s["height"] <= 1.5 * s["line"], f"status line of {name} wraps: {s}"
    assert s["inside"], f"status line of {name} overflows its widget: {s}"
    assert s["ellipsis"] or not s["clipped"], f"status line of {name} is cut without an ellipsis: {s}"


# ----------------------------------------------------------------------------------- tests

def test_shipped_workflows_load_without_missing_nodes_or_extension_errors(browser, server):
    files = sorted(glob.glob(os.path.join(REPO_ROOT, "workflows", "*.json")) +
                   glob.glob(os.path.join(REPO_ROOT, "example_workflows", "*.json")))
    assert files, "no UI workflows shipped in workflows/"
    ours = {k for k, v in server.object_info().items() if v.get("category", "").startswith("attention_motion")}
    _console_errors(browser)  # drop what the page logged while starting
    for path in files:
        with open(path) as f:
            data = json.load(f)
        result = browser.execute_async_script(
            """const [data, ours, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
            const missing = [];
            const orig = app.showMissingNodesError;
            app.showMissingNodesError = (types) => { missing.push(...types); };
            app.loadGraphData(data).then(() => {
                app.showMissingNodesError = orig;
                const nodes = app.graph._nodes;
                const unknown = data.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t]);
                const views = nodes.filter(n => ours.includes(n.type)).map(n => ({
                    id: n.id, type: n.type,
                    tokens: !!n.widgets?.find(w => w.name === 'attention_motion_tokens'),
                    path: !!n.widgets?.find(w => w.name === 'attention_motion_path')}));
                done({missing, unknown, views, count: nodes.length});
            }, (e) => { app.showMissingNodesError = orig; done({error: String(e && e.stack || e)}); });""",
            data, sorted(ours))
        name = os.path.basename(path)
        assert "error" not in result, f"{name}: loadGraphData failed: {result.get('error')}"
        assert result["missing"] == [] and result["unknown"] == [], f"{name}: missing node types {result}"
        assert result["count"] == len(data["nodes"]), name
        # every pack node that takes words shows its token view, and the shipped words are found
        for v in result["views"]:
            if not v["tokens"]:
                continue
            status = _wait(browser, """const n = app.graph.getNodeById(arguments[0]);
                const w = n.widgets.find(w => w.name === 'attention_motion_tokens');
                const s = w.element.dataset.status; return s === 'pending' ? null : s + '|' + (w.element.dataset.missing || '');""",
                           30, f"{name}: token view of node {v['id']} did not answer", v["id"])
            assert status == "ok|", f"{name}: node {v['id']} ({v['type']}) token view reports {status}"
        errors, _ = _console_errors(browser)
        assert errors == [], f"{name}: console errors from the extension: {errors}"


def test_token_view_shows_tokens_chunks_and_missing_words(browser):
    _fresh_graph(browser)
    nid = _add_node(browser, "AttentionCapture", [0, 0], [460, 420], {"words": "circle, blue square, giraffe"})
    _type(browser, nid, "prompt", "a red circle and a blue square")  # like a user, into the node's text box
    status = _wait(browser, """const w = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens');
        return w.element.dataset.status === 'missing' && w.element.dataset.missing === 'giraffe' ? w.element.dataset.missing : null;""",
                   30, "token view did not show exactly the missing word 'giraffe'", nid)
    assert status == "giraffe"
    view = browser.execute_script("""const box = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens').element;
        return {chips: [...box.querySelectorAll('.am-tok')].map(c => [Number(c.dataset.pos), c.textContent, c.classList.contains('am-chosen')]),
                missing: box.querySelector('.am-missing')?.textContent, status: box.dataset.status,
                shown: box.isConnected && box.getBoundingClientRect().height > 20};""", nid)
    assert view["shown"], "the token view is not on the page"
    toks = {p: t for p, t, _ in view["chips"]}
    # <start> a red circle and a blue square <end>: positions from the host's SD1 tokenizer
    assert toks[0].startswith("start") and toks[3] == "circle3" and toks[6] == "blue6" and toks[7] == "square7"
    assert toks[8].startswith("end") and len(toks) == 9
    assert sorted(p for p, _, chosen in view["chips"] if chosen) == [3, 6, 7]
    assert view["missing"] == "not in the prompt: giraffe"
    _node_shot(browser, nid, "frontend_token_view.png")

    # fixing the words clears the warning; a long prompt shows its second 77-token chunk
    browser.execute_script("""const n = app.graph.getNodeById(arguments[0]);
        const set = (k, v) => { const w = n.widgets.find(w => w.name === k); w.value = v;
            if (w.element && 'value' in w.element) w.element.value = v; w.callback?.(v); };
        set('words', 'cat'); set('prompt', Array(100).fill('cat').join(' '));""", nid)
    chunks = _wait(browser, """const w = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens');
        return w.element.dataset.status === 'ok' ? w.element.querySelectorAll('.am-chunk').length : null;""", 30,
                   "token view did not update for the long prompt", nid)
    assert chunks == 2
    answers = browser.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionTokens;", nid)
    assert answers[0]["n_tokens"] == 154 and len(answers[0]["positions"][0]) == 100

    # data-driven: P2PReplace's source prompt, one target per line, "word: value" lists
    pid = _add_node(browser, "P2PReplace", [520, 0], [460, 500], {
        "source_prompt": "a cat sitting on a car", "target_prompts": "a dog sitting on a car\na bird sitting on a car",
        "cross_replace_words": "cat: 0.3, dog: 0.5, horse: 0.2", "reweight": "bird: 2"})
    view = _wait(browser, """const box = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens').element;
        return box.dataset.status === 'missing' ? {missing: box.dataset.missing,
            sections: [...box.querySelectorAll('.am-section')].map(s => [s.dataset.prompt,
                [...s.querySelectorAll('.am-tok.am-chosen')].map(c => Number(c.dataset.pos))])} : null;""",
                 30, "P2PReplace token view did not answer", pid)
    assert view["missing"] == "horse"
    assert view["sections"] == [["source_prompt", [2]], ["target_prompts line 1", [2]], ["target_prompts line 2", [2]]]
    errors, _ = _console_errors(browser)
    assert errors == []


# Where to click a combo widget's right or left arrow (client px) in the classic canvas; None in
# Nodes 2.0, whose combo is an element of the node.
_COMBO_ARROW = """
const [id, name, side] = arguments;
if (LiteGraph.vueNodesMode) return null;
const n = app.graph.getNodeById(id);
const w = n.widgets.find(w => w.name === name);
const y = (w.y ?? w.last_y) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT) / 2;
const x = side === 'right' ? n.size[0] - 22 : 22;  // the arrows: 40 px at each end of the widget
const c = app.canvas.canvas.getBoundingClientRect(), ds = app.canvas.ds;
return [(n.pos[0] + x + ds.offset[0]) * ds.scale + c.left, (n.pos[1] + y + ds.offset[1]) * ds.scale + c.top];
"""


def _choose(driver, node_id, name, value, side):
    """Pick ``value`` in a node's combo widget like a user: classic, a click on the widget's arrow
    (``side``, the next or previous choice); Nodes 2.0, open the widget's list and click the choice."""
    from selenium.webdriver.common.action_chains import ActionChains

    point = driver.execute_script(_COMBO_ARROW, node_id, name, side)
    if point is not None:
        hit = driver.execute_script("const e = document.elementFromPoint(arguments[0], arguments[1]); return e === app.canvas.canvas;", *point)
        assert hit, f"the arrow of combo {name} at {point} is covered"
        chain = ActionChains(driver)
        chain.w3c_actions.pointer_action.move_to_location(int(round(point[0])), int(round(point[1])))
        chain.click().perform()
    else:
        _wait(driver, """const s = document.querySelector(`[data-node-id="${arguments[0]}"] [data-widget-name="${arguments[1]}"]`);
            return s && (s.querySelector('[role=combobox], .p-select, select') || s);""",
              10, f"combo {name} of node {node_id} not shown", node_id, name).click()
        _wait(driver, """return [...document.querySelectorAll('[role=option]')].find(o => o.getClientRects().length &&
            (o.getAttribute('aria-label') || o.textContent).trim() === arguments[0]);""",
              10, f"the list of combo {name} does not offer {value!r}", value).click()
    _wait(driver, "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === arguments[1]).value === arguments[2];",
          10, f"choosing {value!r} in {name} did not reach the widget value", node_id, name, value)


# the token view's chips and entry labels once it answered for `bind` (null: before any answer)
_TOKEN_MARKS = """
const box = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens').element;
const answers = app.graph.getNodeById(arguments[0]).attentionMotionTokens;
if (box.dataset.status !== 'ok' || !answers || answers.some(a => a.entries.some(e => ('bound' in e) !== arguments[1]))) return null;
const chip = (c) => { const s = getComputedStyle(c); return {pos: Number(c.dataset.pos), text: c.firstChild.textContent,
    cls: [...c.classList].filter(k => k !== 'am-tok'), title: c.title, bg: s.backgroundColor, line: s.boxShadow}; };
return {chips: [...box.querySelectorAll('.am-tok')].map(chip),
        labels: [...box.querySelectorAll('.am-words [data-entry]')].map(s => [s.textContent, s.title, getComputedStyle(s).color]),
        shown: box.isConnected && box.getBoundingClientRect().height > 20};
"""


def test_token_view_marks_the_tokens_that_move_with_a_word(browser):
    """Token Shift, "a red circle", words "circle": with bind 'noun phrase' (the default) the view
    marks "red" as moving with "circle" in circle's colour; choosing 'typed words' unmarks it."""
    _fresh_graph(browser)
    nid = _add_node(browser, "TokenShift", [0, 0], [460, 900], {"words": "circle"})
    _type(browser, nid, "prompt", "a red circle")
    assert _widget(browser, nid, "bind") == "noun phrase"
    view = _wait(browser, _TOKEN_MARKS, 30, "the token view did not show the bound tokens", nid, True)
    assert view["shown"], "the token view is not on the page"
    chips = {c["pos"]: c for c in view["chips"]}
    assert [chips[p]["text"] for p in (1, 2, 3)] == ["a", "red", "circle"]  # <start> a red circle <end>
    assert chips[3]["cls"] == ["am-chosen"] and chips[2]["cls"] == ["am-bound"] and chips[1]["cls"] == []
    assert 'moves with "circle"' in chips[2]["title"]
    # drawn in circle's colour, told apart from the typed token: a tint and an underline, not its fill
    assert chips[2]["line"] != "none" and chips[3]["bg"] in chips[2]["line"]
    assert chips[2]["bg"] != chips[3]["bg"] and chips[2]["bg"] != chips[1]["bg"]
    assert view["labels"] == [["circle (+ red) → 3 (+ 2)", 'red: moves with "circle" (bind: noun phrase)', chips[3]["bg"]]]
    _node_shot(browser, nid, "frontend_token_view_bound.png", docs=False)

    _choose(browser, nid, "bind", "typed words", "right")
    view = _wait(browser, _TOKEN_MARKS, 30, "the token view did not follow bind 'typed words'", nid, False)
    chips = {c["pos"]: c for c in view["chips"]}
    assert chips[3]["cls"] == ["am-chosen"] and chips[2]["cls"] == [] and "moves with" not in chips[2]["title"]
    assert [label for label, _, _ in view["labels"]] == ["circle → 3"]

    _choose(browser, nid, "bind", "noun phrase", "left")  # and back
    view = _wait(browser, _TOKEN_MARKS, 30, "the token view did not follow bind 'noun phrase'", nid, True)
    assert {c["pos"]: c["cls"] for c in view["chips"]}[2] == ["am-bound"]
    errors, _ = _console_errors(browser)
    assert errors == []


def _handles(driver, node_id, kind=None, count=None):
    """The path handles once the layout is settled (same screen positions twice in a row)."""
    last = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        hs = driver.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionPath?.handles() || [];", node_id)
        hs = [h for h in hs if kind is None or h["kind"] == kind]
        if hs and (count is None or len(hs) == count) and hs == last:
            return hs
        last = hs
        time.sleep(0.35)
    raise AssertionError(f"path handles did not settle: {last}")


def test_motion_path_widget_drag_writes_values_and_typing_redraws(browser):
    import attention_motion.core.motion as motion

    path = "attention_motion_path"
    _fresh_graph(browser)
    nid = _add_node(browser, "FrameSequence", [0, 0], [420, 900],
                    {"words": "circle", "frames": 16, "width": 512, "height": 256, "dx": 0.3, "dy": 0.0, "keyframes": ""})
    handles = _handles(browser, nid)
    _assert_status_fits(browser, nid, path)  # one line, clipped to the widget (it wrapped on the 2025 frontends)
    start = next(h for h in handles if h["kind"] == "start")
    end = next(h for h in handles if h["kind"] == "end")
    img_w = (end["clientX"] - start["clientX"]) / 0.3  # px per unit of width
    assert img_w > 50
    # the canvas has the image's aspect (512 x 256): height in px = width / 2
    img_h = img_w / 2
    # drag the end to start + (0.5 W, 0.25 H)
    target = (start["clientX"] + 0.5 * img_w, start["clientY"] + 0.25 * img_h)
    _drag(browser, nid, path, end, target)
    dx, dy = _widget(browser, nid, "dx"), _widget(browser, nid, "dy")
    assert (dx, dy) != (0.3, 0.0), "dragging the end handle did not change dx / dy"
    assert abs(dx - 0.5) <= 0.011 and abs(dy - 0.25) <= 0.011, (dx, dy)

    # typing keyframes redraws the path with one handle per keyframe at the typed offsets
    _type(browser, nid, "keyframes", '{"circle": [[0, 0, 0], [8, 0.2, -0.2], [15, 0.4, 0]]}')
    keys = _handles(browser, nid, "key", 3)
    start = keys[0]  # keyframe 0 (offset 0, 0) sits where the start handle was
    assert [k["frame"] for k in keys] == [0, 8, 15]
    assert abs(keys[1]["clientX"] - (start["clientX"] + 0.2 * img_w)) < 2
    assert abs(keys[1]["clientY"] - (start["clientY"] - 0.2 * img_h)) < 2
    assert abs(keys[2]["clientX"] - (start["clientX"] + 0.4 * img_w)) < 2

    # dragging a keyframe rewrites the keyframes text with the new offset
    before = _widget(browser, nid, "keyframes")
    _drag(browser, nid, path, keys[1], (start["clientX"] + 0.1 * img_w, start["clientY"] + 0.3 * img_h))
    text = _widget(browser, nid, "keyframes")
    assert text != before, "dragging a keyframe did not change the keyframes text"
    parsed = motion.parse_keyframes(text, 16, ["circle"])  # the node's own parser accepts it
    assert [k[0] for k in parsed["circle"]] == [0, 8, 15]
    assert abs(parsed["circle"][1][1] - 0.1) <= 0.011 and abs(parsed["circle"][1][2] - 0.3) <= 0.011
    assert parsed["circle"][2][1:] == (0.4, 0.0)

    # double-click on the path near frame 12 adds a keyframe there
    mid = _handles(browser, nid, "key", 3)
    p = (mid[1]["clientX"] * 0.25 + mid[2]["clientX"] * 0.75, mid[1]["clientY"] * 0.25 + mid[2]["clientY"] * 0.75)
    _click(browser, nid, path, *p, double=True)
    parsed = motion.parse_keyframes(_widget(browser, nid, "keyframes"), 16, ["circle"])
    assert len(parsed["circle"]) == 4 and 10 <= parsed["circle"][2][0] <= 14

    # alt-click on a keyframe removes it
    keys = _handles(browser, nid, "key", 4)
    _click(browser, nid, path, keys[2]["clientX"], keys[2]["clientY"], alt=True)
    parsed = motion.parse_keyframes(_widget(browser, nid, "keyframes"), 16, ["circle"])
    assert [k[0] for k in parsed["circle"]] == [0, 8, 15]
    _node_shot(browser, nid, "frontend_motion_path.png")
    errors, _ = _console_errors(browser)
    assert errors == []



def test_motion_path_widget_draws_the_edge_rule(browser):
    """A move past the frame is drawn where the nodes' edge rule stops the word (its centre 0.15
    inside the edge, js/motion_math.js clampOffset = core.shift.clamp_offset), the asked part dashed
    and named in the status line; a move that stays inside is drawn as asked."""
    from attention_motion.core.shift import EDGE_MARGIN

    path = "attention_motion_path"
    _fresh_graph(browser)
    nid = _add_node(browser, "TokenShift", [0, 0], [420, 700],
                    {"prompt": "a red circle", "words": "circle", "dx": 0.8, "dy": -0.2})
    _handles(browser, nid)
    paths = browser.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionPath.paths();", nid)
    (p,) = paths
    ax, ay = p["anchor"]
    assert p["asked"][-1] == [0.8, -0.2]
    assert abs(ax + p["kept"][-1][0] - (1 - EDGE_MARGIN)) < 1e-9 and p["kept"][-1][1] == -0.2
    status = _status_line(browser, nid, path)["text"]
    assert "circle stops 0.15 inside the edge" in status, status
    _assert_status_fits(browser, nid, path)
    browser.execute_script("""const n = app.graph.getNodeById(arguments[0]);
        n.widgets.find(w => w.name === 'dx').value = 0.3; n.attentionMotionPath.redraw();""", nid)
    (p,) = browser.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionPath.paths();", nid)
    assert p["kept"][-1] == p["asked"][-1] == [0.3, -0.2]
    assert "stops" not in _status_line(browser, nid, path)["text"]
    errors, _ = _console_errors(browser)
    assert errors == []

def _region_boxes(driver, node_id, count):
    """The drawn region boxes once the layout is settled (same rectangles twice in a row)."""
    last = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bs = driver.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionRegions?.boxes() || [];", node_id)
        if len(bs) == count and bs == last:
            return bs
        last = bs
        time.sleep(0.35)
    raise AssertionError(f"region boxes did not settle: {last}")


def test_region_box_widget_drag_resize_add_remove(browser):
    from attention_motion.core.boxes import parse_regions

    view = "attention_motion_regions"
    _fresh_graph(browser)
    regions = '[{"prompt": "a red circle", "box": [0.1, 0.2, 0.4, 0.4]}, {"prompt": "a blue square", "path": [[0.5, 0.5, 0.2, 0.2], [0.7, 0.1, 0.2, 0.2]]}]'
    nid = _add_node(browser, "RegionAttention", [0, 0], [420, 700], {"regions": regions})
    boxes = _region_boxes(browser, nid, 3)
    _assert_status_fits(browser, nid, view)
    first = boxes[0]
    side = first["width"] / 0.4  # px per unit of the image side
    assert side > 50 and abs(first["height"] - 0.4 * side) < 1.5
    assert abs(boxes[2]["left"] - (first["left"] + 0.6 * side)) < 1.5  # the path's second box at x 0.7

    def read():
        return parse_regions(_widget(browser, nid, "regions"))  # the node's own parser accepts every edit

    # drag the first box by (+0.2, +0.1) of the image
    grab = {"clientX": first["left"] + 0.5 * first["width"], "clientY": first["top"] + 0.5 * first["height"]}
    before = _widget(browser, nid, "regions")
    _drag(browser, nid, view, grab, (grab["clientX"] + 0.2 * side, grab["clientY"] + 0.1 * side))
    assert _widget(browser, nid, "regions") != before, "dragging a region box did not change the regions"
    got = read()
    assert [round(v, 2) for v in got[0].path[0].tolist()] == [0.3, 0.3, 0.4, 0.4]
    assert got[1].path.shape == (2, 4) and got[1].prompt == "a blue square"
    moved = _region_boxes(browser, nid, 3)[0]
    assert abs(moved["left"] - (first["left"] + 0.2 * side)) < 1.5  # and the drawing follows

    # drag the corner of the path's second box: it grows to 0.25 x 0.3
    b = _region_boxes(browser, nid, 3)[2]
    corner = {"clientX": b["left"] + b["width"], "clientY": b["top"] + b["height"]}
    _drag(browser, nid, view, corner, (corner["clientX"] + 0.05 * side, corner["clientY"] + 0.1 * side))
    got = read()
    assert [round(v, 2) for v in got[1].path[1].tolist()] == [0.7, 0.1, 0.25, 0.3]

    # double-click on empty image adds a region; alt-click on a box removes it
    origin = (first["left"] - 0.1 * side, first["top"] - 0.2 * side)  # image top-left
    _click(browser, nid, view, origin[0] + 0.2 * side, origin[1] + 0.85 * side, double=True)
    got = read()
    assert len(got) == 3 and [round(v, 2) for v in got[2].path[0].tolist()] == [0.05, 0.7, 0.3, 0.3]
    b = _region_boxes(browser, nid, 4)[0]
    _click(browser, nid, view, b["left"] + 5, b["top"] + 20, alt=True)
    got = read()
    assert [r.prompt for r in got] == ["a blue square", "an object"]
    _node_shot(browser, nid, "frontend_region_boxes.png")

    # typing redraws
    _type(browser, nid, "regions", '[{"prompt": "a cat", "box": [0, 0, 0.5, 0.5]}]')
    b = _region_boxes(browser, nid, 1)[0]
    assert abs(b["width"] - 0.5 * side) < 1.5
    errors, _ = _console_errors(browser)
    assert errors == []


# The images a node shows after a run: classic, the node's loaded images the canvas draws;
# Nodes 2.0, the loaded <img> elements of /view results inside the node's element.
_SHOWN_IMAGES = """
const [id, want] = arguments;
const n = app.graph.getNodeById(id);
let imgs;
if (LiteGraph.vueNodesMode) {
    const el = document.querySelector(`[data-node-id="${id}"]`);
    imgs = el ? [...el.querySelectorAll('img')].filter(i => /\\/view\\?/.test(i.src)) : [];
    imgs = imgs.filter(i => { const r = i.getBoundingClientRect(); return r.width > 8 && r.height > 8; });
} else {
    imgs = n.imgs || [];
}
const ok = imgs.length >= want && imgs.every(i => i.complete && i.naturalWidth > 0);
return ok ? imgs.map(i => [i.naturalWidth, i.naturalHeight, i.src]) : null;
"""


def test_queue_on_tiny_model_shows_heatmaps_and_clip(browser, server):
    _fresh_graph(browser, scale=0.7)  # the whole graph on the page: Nodes 2.0 renders only visible nodes
    prompt = "a red circle and a blue square"
    ids = browser.execute_script(
        """const prompt = arguments[0];
        const add = (type, pos, values) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n);
            for (const [k, v] of Object.entries(values || {})) { const w = n.widgets.find(w => w.name === k); w.value = v;
                if (w.element && 'value' in w.element) w.element.value = v; }
            return n; };
        const load = add('TinyCheckpointLoader', [0, 0], {arch: 'sd15', seed: 0});
        const cap = add('AttentionCapture', [300, 0], {prompt, words: 'circle, square'});
        const pos = add('CLIPTextEncode', [300, 440], {text: prompt});
        const neg = add('CLIPTextEncode', [300, 640], {text: ''});
        const lat = add('EmptyLatentImage', [300, 840], {width: 64, height: 64, batch_size: 1});
        const ks = add('KSampler', [800, 0], {seed: 3, steps: 3, cfg: 5.0});
        const dec = add('VAEDecode', [1150, 0]);
        const heat = add('AttentionHeatmaps', [1150, 160], {threshold: 0.5});
        const fs = add('FrameSequence', [0, 1000], {prompt, words: 'circle', frames: 3, width: 64, height: 64, dx: 0.25});
        const ks2 = add('KSampler', [800, 700], {seed: 3, steps: 3, cfg: 5.0});
        const dec2 = add('VAEDecode', [1150, 700]);
        const clip = add('SaveMotionClip', [1150, 860], {filename_prefix: 'browser', mp4: false, fps: 4});
        load.connect(0, cap, 0); load.connect(1, cap, 1); load.connect(1, pos, 0); load.connect(1, neg, 0);
        cap.connect(0, ks, 0); pos.connect(0, ks, 1); neg.connect(0, ks, 2); lat.connect(0, ks, 3);
        ks.connect(0, dec, 0); load.connect(2, dec, 1);
        cap.connect(1, heat, 0); ks.connect(0, heat, 1); dec.connect(0, heat, 'image');
        load.connect(0, fs, 0); load.connect(1, fs, 1);
        fs.connect(0, ks2, 0); pos.connect(0, ks2, 1); neg.connect(0, ks2, 2); fs.connect(1, ks2, 3);
        ks2.connect(0, dec2, 0); load.connect(2, dec2, 1); dec2.connect(0, clip, 0);
        app.graph.setDirtyCanvas(true, true);
        return {heat: heat.id, clip: clip.id};""", prompt)
    t0 = time.monotonic()
    browser.execute_script("app.queuePrompt(0, 1);")
    heat = _wait(browser, _SHOWN_IMAGES, 240, "the heatmaps did not show on AttentionHeatmaps:\n" + server.log_tail(),
                 ids["heat"], 2)
    assert len(heat) == 2 and all(w == 64 and h == 64 for w, h, _ in heat)  # one heatmap per word
    clip = _wait_clip(browser, server, ids["clip"])
    assert ".webp" in clip["src"]
    if not browser.variant.vue:  # the classic canvas plays animated previews through its animation widget
        assert clip["animated"] and clip["anim"], clip
    assert sorted(f.rsplit(".", 1)[1] for f in clip["files"].split(",")) == ["gif", "webp"]
    files = clip["files"].split(",")
    for f in files:
        assert os.path.exists(os.path.join(server.output_dir, f)), f
    print(f"[{browser.variant.id}] queue to previews: {time.monotonic() - t0:.1f} s")
    _node_shot(browser, ids["heat"], "frontend_heatmaps.png", docs=False)
    _node_shot(browser, ids["clip"], "frontend_clip.png", docs=False)
    errors, logs = _console_errors(browser)
    assert errors == [], errors


def _wait_clip(driver, server, clip_id):
    """The clip preview (its image shown) and the saved-files view of SaveMotionClip."""
    deadline = time.monotonic() + 240
    last = None
    while time.monotonic() < deadline:
        shown = driver.execute_script(_SHOWN_IMAGES, clip_id, 1)
        last = driver.execute_script(
            """const n = app.graph.getNodeById(arguments[0]);
            const box = n.attentionMotionFiles?.box;
            const links = box ? [...box.querySelectorAll('a')] : [];
            // every saved file's link is on the page: inside the view (not cut off) and not covered
            const shown = links.length > 0 && box.isConnected && links.every(a => {
                const r = a.getBoundingClientRect(), b = box.getBoundingClientRect();
                const hit = document.elementFromPoint(r.left + Math.min(r.width / 2, 20), r.top + r.height / 2);
                return r.height > 6 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1 && !!hit && a.contains(hit);
            });
            return {files: box?.dataset.files ?? null, links_shown: shown,
                    anim: !!n.widgets?.find(w => w.name === '$$comfy_animation_preview'), animated: !!n.animatedImages};""",
            clip_id)
        if shown and last["files"] and last["links_shown"]:
            return dict(last, src=shown[0][2])
        time.sleep(0.3)
    raise AssertionError(f"the clip and its files did not show on SaveMotionClip (last: {last}):\n" + server.log_tail())



def test_help_panel_shows_the_node_s_help_page(browser, server):
    """Select a Token Shift node, click the selection toolbox's Info button: the side panel's
    Info tab fetches js/docs/TokenShift.md from the pack's web folder and shows it rendered."""
    if browser.variant.frontend != NEWEST:
        pytest.skip(f"the help panel (selection toolbox Info) is checked on the newest frontend ({NEWEST})")
    from selenium.webdriver.common.action_chains import ActionChains

    with open(os.path.join(REPO_ROOT, "js", "docs", "TokenShift.md"), encoding="utf-8") as f:
        page = f.read()
    dx_tooltip = next(line for line in page.splitlines() if line.startswith("| `dx`")).split(" | ")[-1].rstrip(" |")
    _fresh_graph(browser)
    nid = _add_node(browser, "TokenShift", [60, 40], [420, 600])
    browser.execute_script("performance.clearResourceTimings();")
    # a click on the node's title bar selects it, as a user would
    title = browser.execute_script(
        """const n = app.graph.getNodeById(arguments[0]);
        const el = LiteGraph.vueNodesMode && document.querySelector(`[data-node-id="${arguments[0]}"]`);
        if (el) { const r = el.getBoundingClientRect(); return [r.left + 60, r.top + 12]; }
        const c = app.canvas.canvas.getBoundingClientRect(), ds = app.canvas.ds;
        return [(n.pos[0] + 60 + ds.offset[0]) * ds.scale + c.left, (n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2 + ds.offset[1]) * ds.scale + c.top];""",
        nid)
    chain = ActionChains(browser)
    chain.w3c_actions.pointer_action.move_to_location(int(title[0]), int(title[1]))
    chain.click().perform()
    _wait(browser, "const n = app.graph.getNodeById(arguments[0]); "
                   "return !!(n.selected || n.is_selected || app.canvas.selectedItems?.has?.(n) || app.canvas.selected_nodes?.[n.id]);",
          10, "the click on the title bar did not select the node", nid)
    _wait(browser, "const b = document.querySelector('[data-testid=info-button]'); return b && b.getClientRects().length ? b : null;",
          15, "the selection toolbox shows no Info button").click()
    shown = _wait(browser, """const c = [...document.querySelectorAll('.node-help-content')].find(e => e.getClientRects().length);
        const t = c && c.innerText || '';
        return t.includes('Common errors') && t.includes(arguments[0]) ? t : null;""",
                  30, "the help panel did not show Token Shift's help page", dx_tooltip)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert any(u.endswith("/extensions/comfyui-attention-motion/docs/TokenShift.md") for u in fetched), fetched
    # the page rendered as markdown, not shown as text: headings are headings, the inputs a table
    rendered = browser.execute_script("""const c = [...document.querySelectorAll('.node-help-content')].find(e => e.getClientRects().length);
        return {h: [...c.querySelectorAll('h1, h2, h3')].map(h => h.innerText.trim()), rows: c.querySelectorAll('tr').length};""")
    assert "Inputs" in rendered["h"] and "Common errors" in rendered["h"], rendered
    assert rendered["rows"] >= 17, rendered  # header + one row per input of Token Shift (16)
    assert "How it works (Token Shift)" in shown and "| `dx` |" not in shown
