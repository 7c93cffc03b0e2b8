"""Tier 4: the real ComfyUI frontend in headless Chromium, driven by Selenium, on a real server.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the Python
``selenium`` package (requirements-dev.txt). Outside CI the tests skip with the reason when
Chromium is missing; in CI (``CI=true``) they fail instead.

Screenshots of the token view and the motion path widget are written to the test's temp folder,
and to ``docs/`` when ``UPDATE_SCREENSHOTS=1``.
"""
import glob
import io
import json
import os
import shutil
import tempfile
import time

import pytest

pytestmark = pytest.mark.browser

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
EXT_PATH = "/extensions/comfyui-attention-motion/"
EXTENSION = "attention_motion"
FRONTEND_ONLY = {"Note", "Reroute", "PrimitiveNode", "MarkdownNote"}


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


@pytest.fixture(scope="module")
def browser(request, tmp_path_factory):
    chromium, driver_path, missing = _find_browser()
    if missing:
        _unavailable("not installed: " + ", ".join(missing) + " (apt-get install chromium chromium-driver; pip install selenium)")
    comfy_server = request.getfixturevalue("comfy_server")  # started only when a browser is there
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
        driver.get(comfy_server.url)
        _wait(driver, "return !!(window.app && window.app.graph && window.LiteGraph && "
                      "LiteGraph.registered_node_types['AttentionCapture'] && "
                      "app.extensions && app.extensions.some(e => e.name === 'attention_motion'))",
              120, "the frontend did not load the pack's nodes and extension")
        driver.shots = tmp_path_factory.mktemp("screenshots")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, script, timeout, what, *args):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = driver.execute_script(script, *args)
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} (waited {timeout} s; last: {last!r})")


def _console_errors(driver):
    """SEVERE console entries that come from this pack's extension (drained on read)."""
    logs = driver.get_log("browser")
    return [e for e in logs if e["level"] == "SEVERE" and ("attention_motion" in e["message"] or EXT_PATH in e["message"])], logs


def _fresh_graph(driver):
    driver.execute_script("app.graph.clear(); app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1;"
                          "app.graph.setDirtyCanvas(true, true);")


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
            w.value = v; if (w.inputEl) w.inputEl.value = v; w.callback?.(w.value);
        }
        app.graph.setDirtyCanvas(true, true);
        return node.id;""", node_type, pos, size, values or {})


def _widget(driver, node_id, name):
    return driver.execute_script("return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === arguments[1]).value;",
                                 node_id, name)


def _node_shot(driver, node_id, name):
    """PNG of one node (its title bar to its bottom, with DOM widgets), cropped from the page."""
    from PIL import Image

    driver.execute_script("app.graph.setDirtyCanvas(true, true); app.canvas.draw(true, true);")
    time.sleep(0.4)
    rect = driver.execute_script(
        """const n = app.graph.getNodeById(arguments[0]);
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
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        paths.append(os.path.join(REPO_ROOT, "docs", name))
    for p in paths:
        crop.save(p, optimize=True)
    return crop


# ----------------------------------------------------------------------------------- tests

def test_shipped_workflows_load_without_missing_nodes_or_extension_errors(browser, comfy_server):
    files = sorted(glob.glob(os.path.join(REPO_ROOT, "workflows", "*.json")) +
                   glob.glob(os.path.join(REPO_ROOT, "example_workflows", "*.json")))
    assert files, "no UI workflows shipped in workflows/"
    ours = {k for k, v in comfy_server.object_info().items() if v.get("category", "").startswith("attention_motion")}
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
    nid = _add_node(browser, "AttentionCapture", [60, 60], [460, 420], {"words": "circle, blue square, giraffe"})
    # type the prompt into the node's textarea like a user
    area = browser.execute_script(
        "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'prompt').inputEl;", nid)
    area.clear()
    area.send_keys("a red circle and a blue square")
    status = _wait(browser, """const w = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens');
        return w.element.dataset.status === 'missing' && w.element.dataset.missing === 'giraffe' ? w.element.dataset.missing : null;""",
                   30, "token view did not show exactly the missing word 'giraffe'", nid)
    assert status == "giraffe"
    view = browser.execute_script("""const box = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens').element;
        return {chips: [...box.querySelectorAll('.am-tok')].map(c => [Number(c.dataset.pos), c.textContent, c.classList.contains('am-chosen')]),
                missing: box.querySelector('.am-missing')?.textContent, status: box.dataset.status};""", nid)
    toks = {p: t for p, t, _ in view["chips"]}
    # <start> a red circle and a blue square <end>: positions from the host's SD1 tokenizer
    assert toks[0].startswith("start") and toks[3] == "circle3" and toks[6] == "blue6" and toks[7] == "square7"
    assert toks[8].startswith("end") and len(toks) == 9
    assert sorted(p for p, _, chosen in view["chips"] if chosen) == [3, 6, 7]
    assert view["missing"] == "not in the prompt: giraffe"
    _node_shot(browser, nid, "frontend_token_view.png")

    # fixing the words clears the warning; a long prompt shows its second 77-token chunk
    browser.execute_script("""const n = app.graph.getNodeById(arguments[0]);
        const set = (k, v) => { const w = n.widgets.find(w => w.name === k); w.value = v; if (w.inputEl) w.inputEl.value = v; w.callback?.(v); };
        set('words', 'cat'); set('prompt', Array(100).fill('cat').join(' '));""", nid)
    chunks = _wait(browser, """const w = app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_tokens');
        return w.element.dataset.status === 'ok' ? w.element.querySelectorAll('.am-chunk').length : null;""", 30,
                   "token view did not update for the long prompt", nid)
    assert chunks == 2
    answers = browser.execute_script("return app.graph.getNodeById(arguments[0]).attentionMotionTokens;", nid)
    assert answers[0]["n_tokens"] == 154 and len(answers[0]["positions"][0]) == 100

    # data-driven: P2PReplace's source prompt, one target per line, "word: value" lists
    pid = _add_node(browser, "P2PReplace", [560, 60], [460, 500], {
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


def test_motion_path_widget_drag_writes_values_and_typing_redraws(browser):
    from selenium.webdriver.common.action_chains import ActionChains

    import attention_motion.core.motion as motion

    _fresh_graph(browser)
    nid = _add_node(browser, "FrameSequence", [60, 40], [420, 900],
                    {"words": "circle", "frames": 16, "width": 512, "height": 256, "dx": 0.3, "dy": 0.0, "keyframes": ""})
    handles = _handles(browser, nid)
    start = next(h for h in handles if h["kind"] == "start")
    end = next(h for h in handles if h["kind"] == "end")
    img_w = (end["clientX"] - start["clientX"]) / 0.3  # px per unit of width
    assert img_w > 50
    # the canvas has the image's aspect (512 x 256): height in px = width / 2
    img_h = img_w / 2
    # drag the end to start + (0.5 W, 0.25 H)
    target = (start["clientX"] + 0.5 * img_w, start["clientY"] + 0.25 * img_h)
    _drag(browser, end, target)
    assert abs(_widget(browser, nid, "dx") - 0.5) <= 0.011 and abs(_widget(browser, nid, "dy") - 0.25) <= 0.011

    # typing keyframes redraws the path with one handle per keyframe at the typed offsets
    area = browser.execute_script(
        "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'keyframes').inputEl;", nid)
    area.clear()
    area.send_keys('{"circle": [[0, 0, 0], [8, 0.2, -0.2], [15, 0.4, 0]]}')
    keys = _handles(browser, nid, "key", 3)
    assert [k["frame"] for k in keys] == [0, 8, 15]
    assert abs(keys[1]["clientX"] - (start["clientX"] + 0.2 * img_w)) < 2
    assert abs(keys[1]["clientY"] - (start["clientY"] - 0.2 * img_h)) < 2
    assert abs(keys[2]["clientX"] - (start["clientX"] + 0.4 * img_w)) < 2

    # dragging a keyframe rewrites the keyframes text with the new offset
    _drag(browser, keys[1], (start["clientX"] + 0.1 * img_w, start["clientY"] + 0.3 * img_h))
    text = _widget(browser, nid, "keyframes")
    parsed = motion.parse_keyframes(text, 16, ["circle"])  # the node's own parser accepts it
    assert [k[0] for k in parsed["circle"]] == [0, 8, 15]
    assert abs(parsed["circle"][1][1] - 0.1) <= 0.011 and abs(parsed["circle"][1][2] - 0.3) <= 0.011
    assert parsed["circle"][2][1:] == (0.4, 0.0)

    # double-click on the path near frame 12 adds a keyframe there
    mid = _handles(browser, nid, "key", 3)
    p = (mid[1]["clientX"] * 0.25 + mid[2]["clientX"] * 0.75, mid[1]["clientY"] * 0.25 + mid[2]["clientY"] * 0.75)
    canvas = browser.execute_script("return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_path').element.querySelector('canvas');", nid)
    rect = canvas.rect
    ActionChains(browser).move_to_element_with_offset(canvas, p[0] - rect["x"] - rect["width"] / 2,
                                                      p[1] - rect["y"] - rect["height"] / 2).double_click().perform()
    parsed = motion.parse_keyframes(_widget(browser, nid, "keyframes"), 16, ["circle"])
    assert len(parsed["circle"]) == 4 and 10 <= parsed["circle"][2][0] <= 14
    _node_shot(browser, nid, "frontend_motion_path.png")
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
    from selenium.webdriver.common.action_chains import ActionChains

    from attention_motion.core.boxes import parse_regions

    _fresh_graph(browser)
    regions = '[{"prompt": "a red circle", "box": [0.1, 0.2, 0.4, 0.4]}, {"prompt": "a blue square", "path": [[0.5, 0.5, 0.2, 0.2], [0.7, 0.1, 0.2, 0.2]]}]'
    nid = _add_node(browser, "RegionAttention", [60, 40], [420, 700], {"regions": regions})
    boxes = _region_boxes(browser, nid, 3)
    first = boxes[0]
    side = first["width"] / 0.4  # px per unit of the image side
    assert side > 50 and abs(first["height"] - 0.4 * side) < 1.5
    assert abs(boxes[2]["left"] - (first["left"] + 0.6 * side)) < 1.5  # the path's second box at x 0.7

    def read():
        return parse_regions(_widget(browser, nid, "regions"))  # the node's own parser accepts every edit

    # drag the first box by (+0.2, +0.1) of the image
    grab = {"clientX": first["left"] + 0.5 * first["width"], "clientY": first["top"] + 0.5 * first["height"]}
    _drag(browser, grab, (grab["clientX"] + 0.2 * side, grab["clientY"] + 0.1 * side))
    got = read()
    assert [round(v, 2) for v in got[0].path[0].tolist()] == [0.3, 0.3, 0.4, 0.4]
    assert got[1].path.shape == (2, 4) and got[1].prompt == "a blue square"

    # drag the corner of the path's second box: it grows to 0.25 x 0.3
    b = _region_boxes(browser, nid, 3)[2]
    corner = {"clientX": b["left"] + b["width"], "clientY": b["top"] + b["height"]}
    _drag(browser, corner, (corner["clientX"] + 0.05 * side, corner["clientY"] + 0.1 * side))
    got = read()
    assert [round(v, 2) for v in got[1].path[1].tolist()] == [0.7, 0.1, 0.25, 0.3]

    # double-click on empty image adds a region; alt-click on a box removes it
    canvas = browser.execute_script("return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'attention_motion_regions').element.querySelector('canvas');", nid)
    rect = canvas.rect
    origin = (first["left"] - 0.1 * side, first["top"] - 0.2 * side)  # image top-left
    at = (origin[0] + 0.2 * side, origin[1] + 0.85 * side)
    ActionChains(browser).move_to_element_with_offset(canvas, at[0] - rect["x"] - rect["width"] / 2,
                                                      at[1] - rect["y"] - rect["height"] / 2).double_click().perform()
    got = read()
    assert len(got) == 3 and [round(v, 2) for v in got[2].path[0].tolist()] == [0.05, 0.7, 0.3, 0.3]
    b = _region_boxes(browser, nid, 4)[0]
    ActionChains(browser).key_down("\ue00a").move_to_element_with_offset(
        canvas, b["left"] + 5 - rect["x"] - rect["width"] / 2, b["top"] + 20 - rect["y"] - rect["height"] / 2
    ).click().key_up("\ue00a").perform()
    got = read()
    assert [r.prompt for r in got] == ["a blue square", "an object"]
    _node_shot(browser, nid, "frontend_region_boxes.png")

    # typing redraws
    area = browser.execute_script(
        "return app.graph.getNodeById(arguments[0]).widgets.find(w => w.name === 'regions').inputEl;", nid)
    area.clear()
    area.send_keys('[{"prompt": "a cat", "box": [0, 0, 0.5, 0.5]}]')
    b = _region_boxes(browser, nid, 1)[0]
    assert abs(b["width"] - 0.5 * side) < 1.5
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


def _drag(driver, handle, target):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.actions.interaction import POINTER_MOUSE

    actions = ActionChains(driver)
    builder = ActionBuilder(driver, mouse=PointerInput(POINTER_MOUSE, "mouse"))
    builder.pointer_action.move_to_location(int(round(handle["clientX"])), int(round(handle["clientY"])))
    builder.pointer_action.pointer_down()
    for t in (0.3, 0.7, 1.0):
        x = handle["clientX"] + (target[0] - handle["clientX"]) * t
        y = handle["clientY"] + (target[1] - handle["clientY"]) * t
        builder.pointer_action.move_to_location(int(round(x)), int(round(y)))
    builder.pointer_action.pointer_up()
    builder.perform()
    del actions


def test_queue_on_tiny_model_shows_heatmaps_and_clip(browser, comfy_server):
    _fresh_graph(browser)
    prompt = "a red circle and a blue square"
    ids = browser.execute_script(
        """const prompt = arguments[0];
        const add = (type, pos, values) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n);
            for (const [k, v] of Object.entries(values || {})) { const w = n.widgets.find(w => w.name === k); w.value = v; if (w.inputEl) w.inputEl.value = v; }
            return n; };
        const load = add('TinyCheckpointLoader', [0, 0], {arch: 'sd15', seed: 0});
        const cap = add('AttentionCapture', [300, 0], {prompt, words: 'circle, square'});
        const pos = add('CLIPTextEncode', [300, 400], {text: prompt});
        const neg = add('CLIPTextEncode', [300, 600], {text: ''});
        const lat = add('EmptyLatentImage', [300, 800], {width: 64, height: 64, batch_size: 1});
        const ks = add('KSampler', [800, 0], {seed: 3, steps: 3, cfg: 5.0});
        const dec = add('VAEDecode', [1100, 0]);
        const heat = add('AttentionHeatmaps', [1300, 0], {threshold: 0.5});
        const fs = add('FrameSequence', [300, 1000], {prompt, words: 'circle', frames: 3, width: 64, height: 64, dx: 0.25});
        const ks2 = add('KSampler', [800, 1000], {seed: 3, steps: 3, cfg: 5.0});
        const dec2 = add('VAEDecode', [1100, 1000]);
        const clip = add('SaveMotionClip', [1300, 1000], {filename_prefix: 'browser', mp4: false, fps: 4});
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
    heat = _wait(browser, """const n = app.graph.getNodeById(arguments[0]);
        const ok = n.imgs && n.imgs.length && n.imgs.every(i => i.complete && i.naturalWidth > 0);
        return ok ? n.imgs.map(i => [i.naturalWidth, i.naturalHeight, i.src]) : null;""", 180,
                 "the heatmaps did not show on AttentionHeatmaps:\n" + comfy_server.log_tail(), ids["heat"])
    assert len(heat) == 2 and all(w == 64 and h == 64 for w, h, _ in heat)  # one heatmap per word
    clip = _wait(browser, """const n = app.graph.getNodeById(arguments[0]);
        const img = n.imgs && n.imgs[0];
        const files = n.attentionMotionFiles?.box.dataset.files;
        const anim = n.widgets?.find(w => w.name === '$$comfy_animation_preview');
        return img && img.complete && img.naturalWidth > 0 && files ? {src: img.src, files, anim: !!anim, animated: !!n.animatedImages} : null;""",
                 180, "the clip did not show on SaveMotionClip:\n" + comfy_server.log_tail(), ids["clip"])
    assert ".webp" in clip["src"] and clip["animated"] and clip["anim"]
    assert sorted(f.rsplit(".", 1)[1] for f in clip["files"].split(",")) == ["gif", "webp"]
    files = clip["files"].split(",")
    for f in files:
        assert os.path.exists(os.path.join(comfy_server.output_dir, f)), f
    print(f"queue to previews: {time.monotonic() - t0:.1f} s")
    errors, logs = _console_errors(browser)
    assert errors == [], errors
