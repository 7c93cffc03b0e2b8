"""In-process ComfyUI test harness for every host lane (the 2024 pinned host and 2025 hosts).

Import this module before anything imports ``comfy.model_management``: at import it puts
the host root on ``sys.path`` and switches the host to CPU + PyTorch attention.

Public API
----------
setup_host() -> str                      host root (idempotent; done at import)
import_pack() -> module                  the repo imported as package ``attention_motion``
init_host(output_dir=None, load_pack=True) -> Host
encode(clip, text) -> CONDITIONING
empty_latent(width=256, height=256, batch=1) -> LATENT dict   (pixel size, like the node)
ksample(model, positive, negative, latent, seed=0, steps=8, cfg=5.0,
        sampler="euler", scheduler="normal", denoise=1.0) -> latent tensor [B, 4, H/8, W/8]
run_graph(prompt, prompt_id=None, executor=None, raise_on_error=True) -> (outputs, executor)
ServerStub, GraphValidationError, GraphExecutionError

Host-version differences the tests meet (all handled here, nowhere else in tests/):
2025 hosts made node loading, validation and execution async (:func:`_call` awaits them),
``validate_prompt`` takes ``(prompt_id, prompt, partial_execution_list)``, ``PromptExecutor``
takes ``cache_type``, and results moved from ``outputs_ui`` to ``history_result``. The pack's own
host differences live in ``host/compat.py``.
"""
import asyncio
import importlib.util
import inspect
import os
import sys
import tempfile
import types
import uuid

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
TINY_NODES_DIR = os.path.join(TESTS_DIR, "tiny_host_nodes")
PACK_NAME = "attention_motion"

_HOST_ROOT = None


def _read_host_path():
    """COMFYUI_PATH, else .host/host_path (see scripts/hostpath.py, loaded by file path)."""
    spec = importlib.util.spec_from_file_location(
        "_attention_motion_hostpath", os.path.join(REPO_ROOT, "scripts", "hostpath.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.host_path()


def _call(fn, *args, **kwargs):
    """Call a host function that is sync on the pinned host and async on 2025 hosts."""
    res = fn(*args, **kwargs)
    if inspect.isawaitable(res):
        return asyncio.run(_await(res))
    return res


async def _await(aw):
    return await aw


def setup_host():
    """Put the host on sys.path and configure it for CPU tests. Returns the host root."""
    global _HOST_ROOT
    if _HOST_ROOT is not None:
        return _HOST_ROOT
    root = _read_host_path()
    if not os.path.isfile(os.path.join(root, "main.py")):
        raise RuntimeError("{} is not a ComfyUI root (no main.py)".format(root))
    if root not in sys.path:
        sys.path.insert(0, root)
    if "comfy.model_management" in sys.modules:
        import comfy.model_management as mm
        if mm.cpu_state != mm.CPUState.CPU:
            raise RuntimeError("comfy.model_management was imported before the harness set --cpu")
    import comfy.options
    if hasattr(comfy.options, "enable_args_parsing"):
        comfy.options.enable_args_parsing(False)
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    if hasattr(comfy.cli_args.args, "disable_all_custom_nodes"):
        comfy.cli_args.args.disable_all_custom_nodes = False
    import comfy.model_management  # noqa: F401  (reads args now)
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    _HOST_ROOT = root
    return root


def set_io_directories(base):
    """Point ComfyUI's output/temp/input folders at ``base``/{output,temp,input}."""
    import folder_paths
    dirs = {}
    for name in ("output", "temp", "input"):
        d = os.path.join(str(base), name)
        os.makedirs(d, exist_ok=True)
        dirs[name] = d
    folder_paths.set_output_directory(dirs["output"])
    folder_paths.set_temp_directory(dirs["temp"])
    folder_paths.set_input_directory(dirs["input"])
    return dirs


_PACK = None
PACK_IMPORT_ERROR = None


def _is_stub(module):
    return getattr(module, "__attention_motion_stub__", None) is not None


def install_pack_package():
    """Make ``import attention_motion[.sub]`` work for tests, whatever the repo folder is called.

    Tries the real package (runs the repo's ``__init__.py``). If that fails (e.g. the nodes
    layer is broken), registers a bare stub package whose ``__path__`` is the repo root, so
    ``attention_motion.core...`` still imports for pure-tensor tests; the error is kept in
    ``PACK_IMPORT_ERROR`` and ``import_pack()`` re-raises it.
    """
    global PACK_IMPORT_ERROR
    try:
        return import_pack()
    except Exception as e:  # noqa: BLE001
        PACK_IMPORT_ERROR = "{}: {}".format(type(e).__name__, e)
        for name in [m for m in sys.modules if m == PACK_NAME or m.startswith(PACK_NAME + ".")]:
            mod = sys.modules[name]
            if name == PACK_NAME or getattr(mod, "__spec__", None) is None:
                sys.modules.pop(name, None)
        stub = types.ModuleType(PACK_NAME)
        stub.__path__ = [REPO_ROOT]
        stub.__file__ = None
        stub.__package__ = PACK_NAME
        stub.__attention_motion_stub__ = PACK_IMPORT_ERROR
        stub.__spec__ = importlib.util.spec_from_loader(PACK_NAME, loader=None, is_package=True)
        stub.__spec__.submodule_search_locations = [REPO_ROOT]
        sys.modules[PACK_NAME] = stub
        return stub


def import_pack():
    """Import the repo root as package ``attention_motion`` whatever the folder is called."""
    global _PACK
    if _PACK is not None:
        return _PACK
    if PACK_NAME in sys.modules and _is_stub(sys.modules[PACK_NAME]):
        raise ImportError("the pack failed to import: " + sys.modules[PACK_NAME].__attention_motion_stub__)
    if PACK_NAME in sys.modules:
        _PACK = sys.modules[PACK_NAME]
        return _PACK
    setup_host()
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, os.path.join(REPO_ROOT, "__init__.py"), submodule_search_locations=[REPO_ROOT])
    if spec is None or not os.path.isfile(os.path.join(REPO_ROOT, "__init__.py")):
        raise ImportError("the pack has no __init__.py at the repo root yet")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(PACK_NAME, None)
        raise
    _PACK = module
    return module


class Host(types.SimpleNamespace):
    """What the ``host`` fixture returns.

    root: host root; nodes / execution / folder_paths: the host modules;
    output_dir: ComfyUI output folder of this session; pack: the pack module or None;
    pack_error: why the pack failed to load (str) or None; node_classes: nodes.NODE_CLASS_MAPPINGS.
    """


_HOST = None


def init_host(output_dir=None, load_pack=True):
    """Initialise built-in + extra nodes, then register the pack and the tiny test nodes.

    The pack is registered through ``nodes.load_custom_node`` from a symlink named
    ``attention_motion`` (so its module name is stable); failure to import it is recorded in
    ``Host.pack_error`` instead of raising, so tests that do not need it keep running.
    """
    global _HOST
    if _HOST is not None:
        return _HOST
    setup_host()
    import folder_paths
    import nodes
    import execution
    if output_dir is None:
        output_dir = tempfile.mkdtemp(prefix="comfy_test_")
    dirs = set_io_directories(output_dir)

    if hasattr(nodes, "init_extra_nodes"):  # 2024-05 and later
        sig = inspect.signature(nodes.init_extra_nodes)
        kwargs = {"init_custom_nodes": False} if "init_custom_nodes" in sig.parameters else {}
        _call(nodes.init_extra_nodes, **kwargs)
    else:  # pinned host: comfy_extras + the host's custom_nodes folder
        nodes.init_custom_nodes()

    ok = _call(nodes.load_custom_node, TINY_NODES_DIR)
    if not ok or "TinyCheckpointLoader" not in nodes.NODE_CLASS_MAPPINGS:
        raise RuntimeError("could not register tests/tiny_host_nodes with the host")

    pack, pack_error = None, None
    if load_pack:
        pack, pack_error = _load_pack_as_custom_node(nodes, output_dir)

    _HOST = Host(root=_HOST_ROOT, nodes=nodes, execution=execution, folder_paths=folder_paths,
                 output_dir=dirs["output"], dirs=dirs, pack=pack, pack_error=pack_error,
                 node_classes=nodes.NODE_CLASS_MAPPINGS)
    return _HOST


def _load_pack_as_custom_node(nodes, base_dir):
    if not os.path.isfile(os.path.join(REPO_ROOT, "__init__.py")):
        return None, "the pack has no __init__.py at the repo root yet"
    if PACK_NAME in sys.modules and _is_stub(sys.modules[PACK_NAME]):
        return None, sys.modules[PACK_NAME].__attention_motion_stub__
    if PACK_NAME in sys.modules:  # already imported by import_pack(): register its mappings
        module = sys.modules[PACK_NAME]
    else:
        link_dir = os.path.join(str(base_dir), "custom_nodes")
        os.makedirs(link_dir, exist_ok=True)
        link = os.path.join(link_dir, PACK_NAME)
        if not os.path.lexists(link):
            os.symlink(REPO_ROOT, link, target_is_directory=True)
        import logging
        records = []

        class _Grab(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        handler = _Grab(level=logging.WARNING)
        logging.getLogger().addHandler(handler)
        try:
            ok = _call(nodes.load_custom_node, link)
        finally:
            logging.getLogger().removeHandler(handler)
        module = sys.modules.get(PACK_NAME)
        if not ok or module is None:
            sys.modules.pop(PACK_NAME, None)
            return None, "\n".join(records) or "load_custom_node failed"
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None) or {}
    nodes.NODE_CLASS_MAPPINGS.update(mappings)
    nodes.NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
    global _PACK
    _PACK = module
    return module, None


# ------------------------------------------------------------------ node helpers

def encode(clip, text):
    """CONDITIONING for ``text`` via the host's CLIPTextEncode node."""
    import nodes
    node = nodes.CLIPTextEncode()
    fn = getattr(node, nodes.CLIPTextEncode.FUNCTION)
    return fn(clip, text)[0]


def empty_latent(width=256, height=256, batch=1):
    """LATENT dict from the host's EmptyLatentImage (width/height in pixels: 256 -> 32x32)."""
    import nodes
    node = nodes.EmptyLatentImage()
    return getattr(node, nodes.EmptyLatentImage.FUNCTION)(width, height, batch)[0]


def ksample(model, positive, negative, latent, seed=0, steps=8, cfg=5.0, sampler="euler",
            scheduler="normal", denoise=1.0):
    """Sample with nodes.common_ksampler (no progress bar); returns the latent tensor."""
    import torch
    import comfy.utils
    import nodes
    if not isinstance(latent, dict):
        latent = {"samples": latent}
    comfy.utils.PROGRESS_BAR_ENABLED = False
    with torch.inference_mode():
        out = nodes.common_ksampler(model, seed, steps, cfg, sampler, scheduler, positive, negative,
                                    latent, denoise=denoise)[0]
    return out["samples"]


# ------------------------------------------------------------------ whole graphs

class ServerStub:
    """Stands in for PromptServer: records every message the executor sends."""

    def __init__(self, client_id="test-client"):
        self.client_id = client_id
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.events = []  # list of (event, data)

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass

    def events_of(self, kind):
        return [d for e, d in self.events if e == kind]


class GraphValidationError(Exception):
    def __init__(self, error, node_errors):
        self.error = error
        self.node_errors = node_errors
        super().__init__("prompt failed validation: {}\nnode errors: {}".format(error, node_errors))


class GraphExecutionError(Exception):
    def __init__(self, errors, executor):
        self.errors = errors
        self.executor = executor
        msg = "; ".join("{} ({}): {}: {}".format(e.get("node_id"), e.get("node_type"),
                                                e.get("exception_type"), e.get("exception_message"))
                        for e in errors)
        super().__init__("graph execution failed: " + msg)


def validate(prompt, prompt_id=None):
    """execution.validate_prompt on either host API; returns (valid, error, outputs, node_errors)."""
    import execution
    import nodes
    for node_id, node in prompt.items():
        if node.get("class_type") not in nodes.NODE_CLASS_MAPPINGS:
            return (False, {"type": "invalid_prompt",
                            "message": "unknown node type {!r} (node {})".format(node.get("class_type"), node_id),
                            "details": "", "extra_info": {}}, [], {})
    fn = execution.validate_prompt
    params = list(inspect.signature(fn).parameters)
    if len(params) >= 3:  # 2025: (prompt_id, prompt, partial_execution_list)
        return _call(fn, prompt_id or str(uuid.uuid4()), prompt, None)
    return _call(fn, prompt)


def run_graph(prompt, prompt_id=None, executor=None, raise_on_error=True):
    """Validate and execute an API-format prompt in process.

    Returns ``(outputs, executor)``: ``outputs`` maps output node id -> its ui dict
    (e.g. ``{"images": [{"filename", "subfolder", "type"}]}``); ``executor.server.events``
    holds every message sent ((event, data) pairs, e.g. "executed", "execution_error").
    Pass an existing ``executor`` to reuse its cache. Raises GraphValidationError /
    GraphExecutionError unless ``raise_on_error`` is False.
    """
    import execution
    init_host()
    prompt_id = prompt_id or str(uuid.uuid4())
    valid, error, good_outputs, node_errors = validate(prompt, prompt_id)
    if not valid:
        if raise_on_error:
            raise GraphValidationError(error, node_errors)
        return {}, None
    if executor is None:
        server = ServerStub()
        sig = inspect.signature(execution.PromptExecutor.__init__)
        if "cache_args" in sig.parameters:  # late-2025 hosts read cache_args["ram"] after every node
            executor = execution.PromptExecutor(server, cache_type=False, cache_args={"lru": 0, "ram": 0})
        elif "cache_type" in sig.parameters:  # 2025 hosts
            executor = execution.PromptExecutor(server, cache_type=False)
        else:
            executor = execution.PromptExecutor(server)
    server = executor.server
    start = len(server.events)
    _call(executor.execute, prompt, prompt_id, {"client_id": server.client_id}, list(good_outputs))
    errors = [d for e, d in server.events[start:] if e == "execution_error"]
    if errors and raise_on_error:
        raise GraphExecutionError(errors, executor)
    outputs = getattr(executor, "outputs_ui", None)
    if outputs is None:
        hist = getattr(executor, "history_result", None) or {}
        outputs = hist.get("outputs", {})
    return dict(outputs), executor
