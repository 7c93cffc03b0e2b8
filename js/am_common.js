// Shared helpers of the attention_motion frontend extension (no extension registered here).
// Only documented frontend surfaces are used: node callbacks, widgets, addDOMWidget, api.fetchApi.

export const CATEGORY = "attention_motion";

/** True when a node definition (from /object_info) belongs to this pack. */
export function isPackNode(nodeData) {
	return typeof nodeData?.category === "string" && nodeData.category.split("/")[0] === CATEGORY;
}

/** All inputs of a node definition as [name, spec] pairs (required, then optional). */
export function inputEntries(nodeData) {
	const out = [];
	for (const group of ["required", "optional"]) {
		for (const [name, spec] of Object.entries(nodeData?.input?.[group] ?? {})) out.push([name, spec]);
	}
	return out;
}

/** Type name of an input spec ("STRING", "FLOAT", ... or "COMBO" for a list of choices). */
export function inputType(spec) {
	const t = Array.isArray(spec) ? spec[0] : spec;
	return Array.isArray(t) ? "COMBO" : t;
}

export function findWidget(node, name) {
	return node.widgets?.find((w) => w.name === name);
}

/** Set a widget's value the way the user's edit would, so callbacks and serialisation follow. */
export function setWidgetValue(node, name, value) {
	const w = findWidget(node, name);
	if (!w) return false;
	w.value = value;
	// the text box of a DOM widget (2024: also `inputEl`, deprecated in the current frontend)
	const input = w.element instanceof HTMLTextAreaElement || w.element instanceof HTMLInputElement ? w.element : null;
	if (input && input.value !== value) input.value = value;
	w.callback?.(w.value);
	node.setDirtyCanvas?.(true, true);
	node.graph?.setDirtyCanvas?.(true, true);
	return true;
}

/**
 * Call `onChange(key)` whenever `keyFn(node)` changes (checked every `ms` and on every input event
 * of the page), and once at the start.
 * Covers every way a value can change (typing, loading a workflow, other extensions) in both the
 * 2024 and the current frontend; stops when the node is removed.
 */
export function watchNode(node, keyFn, onChange, ms = 300) {
	let last;
	const check = () => {
		let key;
		try {
			key = keyFn(node);
		} catch (e) {
			key = "error:" + e;
		}
		if (key !== last) {
			last = key;
			onChange(key);
		}
	};
	const timer = setInterval(check, ms);
	// typing in any text box checks at once too (the poll is the fallback for other changes)
	const onInput = () => check();
	document.addEventListener("input", onInput, true);
	const onRemoved = node.onRemoved;
	node.onRemoved = function () {
		clearInterval(timer);
		document.removeEventListener("input", onInput, true);
		return onRemoved?.apply(this, arguments);
	};
	setTimeout(check, 0);
	return { check, force: () => { last = undefined; check(); } };
}

/**
 * Chain `fn(node, ...args)` after a node type's own `method` callback (onNodeCreated,
 * onExecuted); a failure is logged as "`what` not added" and never breaks the node.
 */
export function chainCallback(nodeType, method, what, fn) {
	const previous = nodeType.prototype[method];
	nodeType.prototype[method] = function () {
		const r = previous?.apply(this, arguments);
		try {
			fn(this, ...arguments);
		} catch (e) {
			console.warn(`[attention_motion] ${what} not added:`, e);
		}
		return r;
	};
}

/**
 * Size a view canvas for `geom` ({imgW, imgH, cssW, cssH}, image inset by `pad`), paint the
 * backdrop and the image area; returns the 2D context in CSS pixels.
 */
export function paintCanvas(canvas, geom, pad) {
	const dpr = window.devicePixelRatio || 1;
	canvas.style.width = `${geom.cssW}px`;
	canvas.style.height = `${geom.cssH}px`;
	canvas.width = Math.round(geom.cssW * dpr);
	canvas.height = Math.round(geom.cssH * dpr);
	const ctx = canvas.getContext("2d");
	ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
	ctx.fillStyle = "#1b1b1b";
	ctx.fillRect(0, 0, geom.cssW, geom.cssH);
	ctx.fillStyle = "#2c2c34";
	ctx.fillRect(pad, pad, geom.imgW, geom.imgH);
	return ctx;
}

/**
 * Follow a drag that starts with pointer event `e` on `target` until that pointer is released:
 * `onMove(event)` for every move, then `onEnd(event, released)` (released: false when the
 * browser cancelled the pointer). The moves and the release are taken at the window, in the
 * capture phase, and kept from the rest of the page: the frontend cannot start its own drag
 * (canvas pan, a Nodes 2.0 node move) meanwhile, and the drag still ends when the frontend
 * re-renders or moves the widget's element during it (which drops pointer capture).
 */
export function followPointer(target, e, onMove, onEnd) {
	const id = e.pointerId;
	const move = (ev) => {
		if (ev.pointerId !== id) return;
		ev.preventDefault();
		ev.stopPropagation();
		onMove(ev);
	};
	const end = (ev) => {
		if (ev.pointerId !== id) return;
		ev.stopPropagation();
		window.removeEventListener("pointermove", move, true);
		window.removeEventListener("pointerup", end, true);
		window.removeEventListener("pointercancel", end, true);
		try {
			target.releasePointerCapture?.(id);
		} catch {
			// capture already gone
		}
		onEnd(ev, ev.type === "pointerup");
	};
	window.addEventListener("pointermove", move, true);
	window.addEventListener("pointerup", end, true);
	window.addEventListener("pointercancel", end, true);
	try {
		target.setPointerCapture?.(id); // moves outside the browser window still arrive
	} catch {
		// the window listeners follow the pointer inside the page anyway
	}
}

/** A pointer event's position in the canvas's CSS pixels. */
export function canvasPoint(canvas, geom, e) {
	const r = canvas.getBoundingClientRect();
	return [((e.clientX - r.left) * geom.cssW) / r.width, ((e.clientY - r.top) * geom.cssH) / r.height];
}

/**
 * Width in CSS px a view widget's drawing can use: the width its element is laid out at (Nodes
 * 2.0 lays widgets out in the node's own grid), else the node's width less the DOM widget margins.
 */
export function viewWidth(node, box) {
	const w = box?.isConnected ? box.clientWidth : 0;
	return w > 0 ? w : (node.size?.[0] ?? 300) - 20;
}

/** One status line under a drawing: clipped with an ellipsis to the widget, full text as tooltip. */
export function setStatus(status, text, bad) {
	status.classList.toggle("am-bad", !!bad);
	status.textContent = text;
	status.title = text;
}

/** Add a DOM widget that is not sent to the server and not stored among the widget values. */
export function addViewWidget(node, name, element, heightFn) {
	const widget = node.addDOMWidget(name, "attention_motion_view", element, {
		serialize: false,
		hideOnZoom: false,
		getValue: () => undefined,
		setValue: () => {},
		getMinHeight: () => heightFn(),
		getHeight: () => heightFn(),
		getMaxHeight: () => heightFn(),
	});
	widget.serialize = false; // current frontend: keep it out of widgets_values
	widget.serializeValue = () => undefined;
	widget.computeLayoutSize = () => ({ minHeight: heightFn(), maxHeight: heightFn(), minWidth: 0 });
	return widget;
}

/** Grow the node when its widgets need more height than it has. */
export function fitNode(node) {
	const size = node.computeSize?.();
	if (!size) return;
	const w = Math.max(node.size[0], size[0]);
	node.setSize?.([w, node.size[1]]); // lets DOM-widget layouts grow the node to their min heights
	node.setDirtyCanvas?.(true, true);
}

let cssDone = false;
/** Install the extension's style sheet once. */
export function ensureCss() {
	if (cssDone) return;
	cssDone = true;
	const style = document.createElement("style");
	style.dataset.attentionMotion = "1";
	style.textContent = `
.am-view { font: 11px/1.35 sans-serif; color: var(--input-text, #ddd); overflow: auto; box-sizing: border-box;
  background: var(--comfy-input-bg, #222); border-radius: 6px; padding: 4px 6px; }
.am-head { color: var(--descrip-text, #999); margin: 2px 0; }
.am-chunk { display: flex; flex-wrap: wrap; gap: 2px; margin: 2px 0 4px; padding-left: 4px; border-left: 3px solid #557; }
.am-chunk[data-chunk="1"] { border-left-color: #755; } .am-chunk[data-chunk="2"] { border-left-color: #575; }
.am-tok { padding: 0 3px; border-radius: 3px; background: rgba(255,255,255,.08); white-space: nowrap; }
.am-tok sub { color: var(--descrip-text, #999); font-size: 8px; margin-left: 1px; }
.am-tok.am-special { opacity: .55; }
.am-tok.am-chosen { color: #111; font-weight: bold; }
.am-tok.am-bound { color: var(--am-c); background: color-mix(in srgb, var(--am-c) 22%, transparent);
  box-shadow: inset 0 -2px 0 var(--am-c); font-weight: bold; }
.am-words { margin: 2px 0; }
.am-missing { color: #ff7b7b; font-weight: bold; margin: 2px 0; }
.am-error { color: #ffb36b; }
.am-path { display: flex; flex-direction: column; align-items: center; gap: 2px; box-sizing: border-box; overflow: hidden; min-width: 0; }
.am-path canvas { flex-shrink: 0; touch-action: none; cursor: crosshair; border-radius: 4px; }
.am-path .am-status { font: 10px/1.3 sans-serif; color: var(--descrip-text, #999); text-align: center; flex-shrink: 0;
  box-sizing: border-box; width: 100%; max-width: 100%; padding: 0 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.am-path .am-status.am-bad { color: #ff7b7b; }
.am-files { font: 11px/1.4 sans-serif; color: var(--descrip-text, #999); overflow: hidden; }
.am-files .am-links { display: flex; align-items: baseline; gap: 6px; white-space: nowrap; overflow: hidden; }
.am-files .am-links > span { flex-shrink: 0; }
.am-files a { color: var(--input-text, #ddd); min-width: 0; flex: 0 1 auto; overflow: hidden; text-overflow: ellipsis; }
.am-files video { width: 100%; max-height: 100%; display: block; }
`;
	document.head.append(style);
}

export function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (k === "class") e.className = v;
		else if (k === "text") e.textContent = v;
		else if (k.startsWith("data-")) e.setAttribute(k, v);
		else e[k] = v;
	}
	for (const c of children) if (c != null) e.append(c);
	return e;
}

export const PALETTE = ["#ffd166", "#06d6a0", "#4cc9f0", "#f78c6b", "#c77dff", "#90e0ef", "#ef476f", "#b5e48c"];

/**
 * How the token view marks each position of a tokenize answer's `entries` (with bind "noun
 * phrase" each entry has `bound` positions and `bound_words`): Map position -> {colour, entry,
 * bound}, bound true for a token that moves with `entry` without being typed. A typed token wins.
 */
export function tokenMarks(entries, colours) {
	const marks = new Map();
	for (const e of entries) {
		for (const p of e.bound ?? []) if (!marks.has(p)) marks.set(p, { colour: colours.get(e.entry), entry: e.entry, bound: true });
	}
	for (const e of entries) for (const p of e.positions) marks.set(p, { colour: colours.get(e.entry), entry: e.entry, bound: false });
	return marks;
}

/** The token view's label of a found entry: "ball → 6", or "ball (+ red) → 6 (+ 5)" with bound tokens. */
export function entryLabel(e) {
	const bound = e.bound ?? [];
	if (!bound.length) return `${e.entry} → ${e.positions.join(" ")}`;
	return `${e.entry} (+ ${(e.bound_words ?? []).join(" ")}) → ${e.positions.join(" ")} (+ ${bound.join(" ")})`;
}

/** Split a comma-separated word list like the nodes do (host/tokens.py parse_word_list). */
export function parseWordList(spec) {
	return String(spec ?? "").split(",").map((w) => w.trim()).filter(Boolean);
}
