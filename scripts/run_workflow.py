#!/usr/bin/env python3
"""Run a ComfyUI workflow headless against a running ComfyUI server.

    python scripts/run_workflow.py workflows/capture_heatmaps.json \\
        --server http://127.0.0.1:8188 --set 3.seed=7 --out outputs/

Takes a workflow in UI format (converted with the server's /object_info) or API format,
applies ``--set`` overrides (``NODE.INPUT=VALUE`` or ``INPUT=VALUE`` for every node with that
input), posts it to /prompt, follows progress on the websocket /ws, downloads the outputs
through /view into ``--out`` and prints their paths. A Load Image node whose ``image`` names a
local file (or a file in the pack's ``workflows/inputs``) gets that file uploaded first.

Exit status: 0 done; 1 bad arguments, unreadable workflow or server unreachable; 2 the server
rejected the prompt (node errors printed); 3 execution failed (the node's error printed);
4 timed out; 130 cancelled (Ctrl-C or SIGTERM: the prompt is deleted from the server's queue, or
interrupted if it is running). Standard library only: no ComfyUI import, no extra dependency.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workflow_format  # noqa: E402

EXIT_OK, EXIT_USAGE, EXIT_REJECTED, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_CANCELLED = 130
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RunError(Exception):
    """A run that ended badly; ``code`` is the exit status, the message is printable."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------- websocket
class WebSocket:
    """Minimal RFC 6455 client: text/binary frames in, pong and close out (frames masked)."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        host, port = parts.hostname, parts.port or (443 if secure else 80)
        sock = socket.create_connection((host, port), timeout=timeout)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise ConnectionError(f"websocket handshake refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        expect = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expect:
            raise ConnectionError("websocket handshake: bad Sec-WebSocket-Accept")

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed by the server")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> tuple[int, bytes]:
        """Next complete message as (opcode, payload); answers pings; raises on close."""
        message, first_op = b"", None
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the server")
            if opcode != 0x0:
                first_op = opcode
            message += payload
            if fin:
                return first_op or 0x1, message

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


# ----------------------------------------------------------------------------- HTTP
def _http(server: str, path: str, body: Any = None, timeout: float = 60.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.rstrip("/") + path, data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise RunError(EXIT_USAGE, f"cannot reach the ComfyUI server at {server}: {e}") from None


def get_json(server: str, path: str) -> Any:
    status, raw = _http(server, path)
    if status != 200:
        raise RunError(EXIT_USAGE, f"GET {path}: HTTP {status}: {raw[:300].decode(errors='replace')}")
    return json.loads(raw)


# ----------------------------------------------------------------------------- input pictures
INPUTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", "inputs")
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def local_picture(value: Any, search: tuple[str, ...] = (INPUTS_DIR,)) -> str | None:
    """The local file a Load Image ``image`` value names: the value as a path, else a file of that
    name in ``search`` (the pack's ``workflows/inputs``); None if there is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    candidates = [value] + [os.path.join(d, os.path.basename(value)) for d in search]
    return next((os.path.abspath(c) for c in candidates if os.path.isfile(c)), None)


def upload_picture(server: str, path: str) -> str:
    """POST ``path`` to the server's /upload/image (input folder, overwriting); returns the name to use."""
    if os.path.getsize(path) > MAX_UPLOAD_BYTES:
        raise RunError(EXIT_USAGE, f"{path} is larger than {MAX_UPLOAD_BYTES // 2 ** 20} MB; not uploaded")
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path).replace('"', "_")
    body = b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode(), data, b"\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'.encode(),
        f"--{boundary}--\r\n".encode()])
    req = urllib.request.Request(server.rstrip("/") + "/upload/image", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RunError(EXIT_USAGE, f"uploading {path}: HTTP {e.code}: {e.read()[:200].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise RunError(EXIT_USAGE, f"uploading {path} to {server}: {e}") from None
    sub = answer.get("subfolder") or ""
    return f"{sub}/{answer['name']}" if sub else answer["name"]


def upload_pictures(api: dict, server: str, log: Callable[[str], None] = print) -> None:
    """Upload the local picture of every Load Image node (``image`` naming a local file, or one in
    ``workflows/inputs``) and point the node at the uploaded copy."""
    for nid, node in api.items():
        if node.get("class_type") not in ("LoadImage", "LoadImageMask"):
            continue
        inputs = node.get("inputs", {})
        path = local_picture(inputs.get("image"))
        if path is not None:
            inputs["image"] = upload_picture(server, path)
            log(f"uploaded {path} for node {nid} ({node['class_type']})")


# ----------------------------------------------------------------------------- error text
def format_rejection(body: Any) -> str:
    """Readable text of a /prompt 400 answer: the error, then each node's errors."""
    if not isinstance(body, dict):
        return f"the server rejected the prompt: {body}"
    lines = []
    err = body.get("error")
    if isinstance(err, dict):
        lines.append(f"the server rejected the prompt: {err.get('message', '')}".rstrip())
        if err.get("details"):
            lines.append(f"  {err['details']}")
    elif err:
        lines.append(f"the server rejected the prompt: {err}")
    node_errors = body.get("node_errors") or {}
    for nid, info in (node_errors.items() if isinstance(node_errors, dict) else []):
        lines.append(f"node {nid} ({info.get('class_type', '?')}):")
        for e in info.get("errors", []):
            inp = (e.get("extra_info") or {}).get("input_name")
            where = f" [input '{inp}']" if inp else ""
            detail = e.get("details") or ""
            lines.append(f"  - {e.get('message', '')}{where}: {detail}".rstrip(": "))
    return "\n".join(lines)


def format_execution_error(data: dict, traceback: bool = False) -> str:
    """Readable text of an ``execution_error`` event (the host's traceback only if asked)."""
    kind = str(data.get("exception_type", "Error")).rsplit(".", 1)[-1]
    lines = [f"execution failed in node {data.get('node_id')} ({data.get('node_type')}): "
             f"{kind}: {data.get('exception_message', '').strip()}"]
    tb = data.get("traceback") or []
    if tb and traceback:
        lines.append("  host traceback (last lines):")
        lines += ["    " + line.rstrip() for line in "".join(tb).rstrip().splitlines()[-12:]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- run
def prepare(workflow: dict, server: str, sets: list[str]) -> dict:
    """API prompt from a UI or API workflow, overrides applied (fetches /object_info if UI)."""
    if workflow_format.is_ui_format(workflow):
        api = workflow_format.ui_to_api(workflow, get_json(server, "/object_info"))
    elif workflow_format.is_api_format(workflow):
        api = json.loads(json.dumps(workflow))
    else:
        raise RunError(EXIT_USAGE, "the workflow is neither UI format nor API format")
    return workflow_format.apply_overrides(api, sets)


def _file_entries(outputs: dict) -> list[tuple[str, dict]]:
    """Every distinct file a node's UI output lists (a file may be listed under several keys)."""
    found, seen = [], set()
    for nid, out in (outputs or {}).items():
        for value in (out or {}).values():
            for v in value if isinstance(value, list) else []:
                if isinstance(v, dict) and "filename" in v:
                    key = (v["filename"], v.get("subfolder", ""), v.get("type", "output"))
                    if key not in seen:
                        seen.add(key)
                        found.append((nid, v))
    return found


def download(server: str, outputs: dict, out_dir: str, kinds: tuple[str, ...] = ("output",)) -> list[str]:
    """Fetch every file listed in a history ``outputs`` dict through /view; returns local paths."""
    paths = []
    os.makedirs(out_dir, exist_ok=True)
    for _nid, entry in _file_entries(outputs):
        kind = entry.get("type", "output")
        if kind not in kinds:
            continue
        query = urllib.parse.urlencode({"filename": entry["filename"], "subfolder": entry.get("subfolder", ""),
                                        "type": kind})
        status, raw = _http(server, "/view?" + query)
        if status != 200:
            raise RunError(EXIT_FAILED, f"GET /view {entry['filename']}: HTTP {status}")
        sub = os.path.join(out_dir, *[p for p in entry.get("subfolder", "").split("/") if p not in ("", "..")])
        if kind != "output":
            sub = os.path.join(out_dir, kind, os.path.relpath(sub, out_dir))
        os.makedirs(sub, exist_ok=True)
        path = os.path.normpath(os.path.join(sub, os.path.basename(entry["filename"])))
        with open(path, "wb") as f:
            f.write(raw)
        paths.append(path)
    return paths


def cancel_prompts(server: str, prompt_ids: set[str], timeout: float = 10.0) -> None:
    """Delete ``prompt_ids`` from the server's queue and interrupt the one running, if it is ours."""
    if not prompt_ids:
        return
    try:
        _http(server, "/queue", {"delete": sorted(prompt_ids)}, timeout=timeout)
        status, raw = _http(server, "/queue", timeout=timeout)
        running = json.loads(raw).get("queue_running", []) if status == 200 else []
        if any(len(item) > 1 and item[1] in prompt_ids for item in running):
            _http(server, "/interrupt", {}, timeout=timeout)
    except (RunError, OSError, ValueError):
        pass  # a dead server has nothing left to cancel


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block a SIGTERM (a process supervisor, ``timeout``, ``kill``) raises
    KeyboardInterrupt as Ctrl-C does, so the run cancels its prompts before it exits."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(workflow: dict, server: str, sets: list[str] | None = None, out_dir: str = "outputs",
        timeout: float = 600.0, previews: bool = False, log: Callable[[str], None] = print,
        traceback: bool = False, on_queued: Callable[[str], None] | None = None) -> dict:
    """Queue ``workflow`` on ``server``, wait for it and download its outputs.

    ``on_queued(prompt_id)`` is called as soon as the server has accepted the prompt (so a
    caller can cancel it while it runs).

    Returns ``{"prompt_id", "outputs" (history outputs), "files" (local paths)}``; raises
    :class:`RunError` with the exit code and a readable message when it goes wrong.
    """
    server = server.rstrip("/")
    api = prepare(workflow, server, list(sets or []))
    upload_pictures(api, server, log)
    names = {nid: node.get("class_type") for nid, node in api.items()}
    client_id = uuid.uuid4().hex
    ws_url = server.replace("https://", "wss://").replace("http://", "ws://") + "/ws?clientId=" + client_id
    try:
        ws = WebSocket(ws_url)
    except OSError as e:
        raise RunError(EXIT_USAGE, f"cannot open the websocket {ws_url}: {e}") from None
    try:
        status, raw = _http(server, "/prompt", {"prompt": api, "client_id": client_id})
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        if status != 200:
            raise RunError(EXIT_REJECTED, format_rejection(body))
        prompt_id = body["prompt_id"]
        if on_queued is not None:
            on_queued(prompt_id)
        log(f"queued prompt {prompt_id} ({len(api)} nodes)")
        deadline = time.monotonic() + timeout
        executed = _follow(ws, prompt_id, names, timeout, log, traceback)
    finally:
        ws.close()
    history = wait_for_history(server, prompt_id, deadline)
    outputs = _merge_outputs(history.get("outputs") or {}, executed)
    kinds = ("output", "temp") if previews else ("output",)
    files = download(server, outputs, out_dir, kinds)
    for path in files:
        log(f"saved {path}")
    return {"prompt_id": prompt_id, "outputs": outputs, "files": files}


def wait_for_history(server: str, prompt_id: str, deadline: float, poll: float = 0.05) -> dict:
    """The prompt's ``/history`` entry, polled until the server has written it.

    The websocket's end-of-run messages do not mean the history is there: 2025 hosts send
    ``execution_success`` (and even ``executing`` with no node) from the executor, before the
    prompt worker stores the history entry. Raises :class:`RunError` (timeout) at ``deadline``.
    """
    while True:
        entry = get_json(server, f"/history/{prompt_id}").get(prompt_id)
        if isinstance(entry, dict):  # written in one piece when the prompt is done
            return entry
        if time.monotonic() > deadline:
            raise RunError(EXIT_TIMEOUT, f"prompt {prompt_id} finished but the server wrote no history for it")
        time.sleep(poll)
        poll = min(poll * 2, 1.0)


def _merge_outputs(history: dict, executed: dict) -> dict:
    """History outputs, plus any node whose ``executed`` message the history lacks."""
    merged = dict(history)
    for nid, out in executed.items():
        merged.setdefault(nid, out)
    return merged


def _follow(ws: WebSocket, prompt_id: str, names: dict, timeout: float, log: Callable[[str], None],
            traceback: bool = False) -> dict:
    """Follow the prompt's websocket messages until it ends; returns the ``executed`` outputs seen."""
    deadline = time.monotonic() + timeout
    executed: dict = {}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RunError(EXIT_TIMEOUT, f"prompt {prompt_id} did not finish within {timeout:.0f} s")
        ws.settimeout(left)
        try:
            opcode, payload = ws.recv()
        except socket.timeout:
            continue
        except OSError as e:
            raise RunError(EXIT_FAILED, f"lost the websocket while waiting for prompt {prompt_id}: {e}") from None
        if opcode != 0x1:
            continue  # binary frames are live previews
        msg = json.loads(payload)
        kind, data = msg.get("type"), msg.get("data") or {}
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        if kind == "execution_start":
            log("started")
        elif kind == "execution_cached" and data.get("nodes"):
            log("cached: " + ", ".join(f"{n} ({names.get(n, '?')})" for n in data["nodes"]))
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                if data.get("prompt_id") == prompt_id:
                    log("done")
                    return executed
            else:
                log(f"running node {node} ({names.get(str(node), '?')})")
        elif kind == "progress":
            node = data.get("node")
            where = f" (node {node} {names.get(str(node), '?')})" if node is not None else ""
            log(f"  step {data.get('value')}/{data.get('max')}{where}")
        elif kind == "execution_error":
            raise RunError(EXIT_FAILED, format_execution_error(data, traceback))
        elif kind == "execution_interrupted":
            raise RunError(EXIT_FAILED, f"prompt {prompt_id} was interrupted (node {data.get('node_id')})")
        elif kind == "executed" and data.get("node") is not None and isinstance(data.get("output"), dict):
            executed[str(data["node"])] = data["output"]
        elif kind == "execution_success":
            log("done")
            return executed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", help="workflow JSON file (UI or API format)")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI URL (default %(default)s)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="[NODE.]INPUT=VALUE",
                        help="override an input of one node (3.seed=7) or of every node having it "
                             "(ckpt_name=model.safetensors); repeatable")
    parser.add_argument("--out", default="outputs", help="folder for the downloaded outputs (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run (default %(default)s)")
    parser.add_argument("--previews", action="store_true", help="also download preview (temp) images")
    parser.add_argument("--traceback", action="store_true", help="print the host's traceback when a node fails")
    parser.add_argument("--print-api", action="store_true", help="print the API prompt and exit (no run)")
    args = parser.parse_args(argv)
    queued: set[str] = set()
    try:
        workflow = workflow_format.load(args.workflow)
        if args.print_api:
            print(json.dumps(prepare(workflow, args.server, args.sets), indent=2))
            return EXIT_OK
        with sigterm_as_ctrl_c():
            result = run(workflow, args.server, args.sets, args.out, args.timeout, args.previews,
                         traceback=args.traceback, on_queued=queued.add)
    except KeyboardInterrupt:
        cancel_prompts(args.server.rstrip("/"), queued)
        print("cancelled" + (": the prompt was deleted from the server's queue or interrupted" if queued else ""),
              file=sys.stderr)
        return EXIT_CANCELLED
    except RunError as e:
        print(str(e), file=sys.stderr)
        return e.code
    except (workflow_format.WorkflowError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not result["files"]:
        print("finished; the workflow produced no output files", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
