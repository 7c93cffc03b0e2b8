// Motion path widget: on nodes of this pack with dx/dy inputs (FrameSequence, TokenShift), draw
// each moving word's path over a canvas with the image's aspect. Dragging the start / end (or a
// keyframe) writes dx, dy / keyframes exactly as a user could type them; typing redraws.
// The path is drawn where the nodes' edge rule (clampOffset) lets the word go from its anchor; the
// part of a requested move past that is dashed, and the status line says which words stop.
import { addViewWidget, canvasPoint, chainCallback, followPointer, paintCanvas, ensureCss, el, findWidget, fitNode, inputEntries, inputType, isPackNode, parseWordList, setStatus, setWidgetValue, viewWidth, watchNode, PALETTE } from "./am_common.js";
import { clampOffset, clampShift, EDGE_MARGIN, formatKeyframes, interpolate, parseKeyframes, round2, straightKeys, wordKeys } from "./motion_math.js";

const WIDGET = "attention_motion_path";
const PROP = "attention_motion_anchors"; // where each word sits in the source image (drawing only)
const PAD = 10;
const MAX_H = 200;
const STATUS_H = 28 + 20; // status line + the DOM widget margins
const HIT = 11;

/** The path inputs of a node definition, or null when it has no dx/dy. */
export function pathInputs(nodeData) {
	const types = Object.fromEntries(inputEntries(nodeData).map(([n, s]) => [n, inputType(s)]));
	if (types.dx !== "FLOAT" || types.dy !== "FLOAT") return null;
	const has = (n, t) => (types[n] === t ? n : null);
	return {
		keyframes: has("keyframes", "STRING"), frames: has("frames", "INT"), width: has("width", "INT"),
		height: has("height", "INT"), interpolation: has("interpolation", "COMBO"), words: has("words", "STRING"),
	};
}

function attach(node, names) {
	ensureCss();
	const canvas = el("canvas");
	const status = el("div", { class: "am-status" });
	const box = el("div", { class: "am-path" }, canvas, status);
	let geom = { imgW: 100, imgH: 100, cssW: 120, cssH: 120 };
	let handles = [];
	let paths = []; // per word: the asked offsets and those the edge rule keeps (fractions), as drawn
	let drag = null;

	const val = (n, d) => (n ? findWidget(node, n)?.value ?? d : d);
	const state = () => {
		const w = Number(val(names.width, 512)) || 512;
		const h = Number(val(names.height, 512)) || 512;
		const frames = Math.max(1, Math.round(Number(val(names.frames, 2)) || 2));
		const words = names.words ? parseWordList(val(names.words, "")) : [];
		return {
			w, h, frames, words: words.length ? words : ["path"],
			dx: Number(val("dx", 0)) || 0, dy: Number(val("dy", 0)) || 0,
			text: names.keyframes ? String(val(names.keyframes, "")) : "",
			mode: String(val(names.interpolation, "linear")),
		};
	};
	const anchors = (words) => {
		node.properties = node.properties || {};
		const stored = node.properties[PROP] || {};
		const out = {};
		words.forEach((word, i) => {
			const a = stored[word];
			out[word] = Array.isArray(a) && a.length === 2 ? a : [(i + 1) / (words.length + 1) - 0.15, 0.5];
		});
		return out;
	};
	const setAnchor = (word, xy) => {
		node.properties = node.properties || {};
		node.properties[PROP] = { ...(node.properties[PROP] || {}), [word]: [round2(xy[0]), round2(xy[1])] };
	};
	const layout = () => {
		const s = state();
		const availW = Math.max(60, viewWidth(node, box) - 2 * PAD);
		let imgW = availW;
		let imgH = (availW * s.h) / s.w;
		if (imgH > MAX_H) {
			imgH = MAX_H;
			imgW = (MAX_H * s.w) / s.h;
		}
		geom = { imgW, imgH, cssW: imgW + 2 * PAD, cssH: imgH + 2 * PAD };
		return s;
	};
	const toPx = (fx, fy) => [PAD + fx * geom.imgW, PAD + fy * geom.imgH];
	const toFrac = (px, py) => [(px - PAD) / geom.imgW, (py - PAD) / geom.imgH];

	const draw = () => {
		const s = layout();
		const ctx = paintCanvas(canvas, geom, PAD);
		ctx.strokeStyle = "#3c3c48";
		ctx.lineWidth = 1;
		for (let i = 1; i < 4; i++) {
			ctx.beginPath();
			ctx.moveTo(PAD + (geom.imgW * i) / 4, PAD);
			ctx.lineTo(PAD + (geom.imgW * i) / 4, PAD + geom.imgH);
			ctx.moveTo(PAD, PAD + (geom.imgH * i) / 4);
			ctx.lineTo(PAD + geom.imgW, PAD + (geom.imgH * i) / 4);
			ctx.stroke();
		}
		const parsed = parseKeyframes(s.text, s.frames, s.words);
		const anc = anchors(s.words);
		const stopped = [];
		handles = [];
		paths = [];
		s.words.forEach((word, wi) => {
			const colour = PALETTE[wi % PALETTE.length];
			const keys = wordKeys(parsed, word, s.dx, s.dy, s.frames);
			const keyed = parsed.kind === "list" ||
				(parsed.kind === "dict" && Object.keys(parsed.paths).some((k) => k.toLowerCase() === word.toLowerCase()));
			const a = anc[word];
			const asked = interpolate(keys, s.frames, s.mode);
			const kept = asked.map((o) => clampOffset(a, o));
			const pts = kept.map(([ox, oy]) => toPx(a[0] + ox, a[1] + oy));
			paths.push({ word, anchor: a, asked, kept });
			if (kept.some((k, i) => k[0] !== asked[i][0] || k[1] !== asked[i][1])) {
				stopped.push(word);
				ctx.setLineDash([3, 3]);
				ctx.strokeStyle = colour;
				ctx.lineWidth = 1;
				ctx.beginPath();
				asked.forEach(([ox, oy], i) => {
					const [x, y] = toPx(a[0] + ox, a[1] + oy);
					if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
				});
				ctx.stroke();
				ctx.setLineDash([]);
			}
			ctx.strokeStyle = colour;
			ctx.lineWidth = 2;
			ctx.beginPath();
			pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
			ctx.stroke();
			ctx.fillStyle = colour;
			for (const [x, y] of pts) {
				ctx.beginPath();
				ctx.arc(x, y, 1.8, 0, 2 * Math.PI);
				ctx.fill();
			}
			// the source position of the word (offset 0): start of a straight path
			const [ax, ay] = toPx(a[0], a[1]);
			if (!keyed) {
				const [ex, ey] = toPx(a[0] + s.dx, a[1] + s.dy);
				handles.push({ word, kind: "start", x: ax, y: ay }, { word, kind: "end", x: ex, y: ey });
			} else {
				keys.forEach((k, i) => {
					const [x, y] = toPx(a[0] + k[1], a[1] + k[2]);
					handles.push({ word, kind: "key", index: i, frame: k[0], x, y });
				});
			}
			for (const h of handles.filter((h) => h.word === word)) {
				ctx.beginPath();
				if (h.kind === "end") {
					ctx.moveTo(h.x, h.y - 7); ctx.lineTo(h.x + 7, h.y); ctx.lineTo(h.x, h.y + 7); ctx.lineTo(h.x - 7, h.y); ctx.closePath();
				} else {
					ctx.arc(h.x, h.y, h.kind === "key" ? 5 : 6, 0, 2 * Math.PI);
				}
				ctx.fillStyle = h.kind === "start" ? "#fff" : colour;
				ctx.fill();
				ctx.strokeStyle = "#000";
				ctx.lineWidth = 1;
				ctx.stroke();
				if (h.kind === "key") {
					ctx.fillStyle = "#ddd";
					ctx.font = "9px sans-serif";
					ctx.fillText(String(h.frame), h.x + 6, h.y - 6);
				}
			}
			ctx.fillStyle = colour;
			ctx.font = "bold 10px sans-serif";
			ctx.fillText(word, ax + 8, ay + 14);
		});
		const bad = parsed.kind === "error";
		const edge = stopped.length
			? `; ${stopped.join(", ")} stop${stopped.length === 1 ? "s" : ""} ${EDGE_MARGIN} inside the edge (dashed: asked)`
			: "";
		setStatus(status, bad
			? `${parsed.message}: showing the straight path (dx ${s.dx}, dy ${s.dy})`
			: `${s.w}×${s.h}, ${s.frames} frame${s.frames === 1 ? "" : "s"}; drag ○ start / ◆ end / ● keyframe` +
			  (names.keyframes ? "; double-click adds a keyframe, alt-click removes one" : "") + edge, bad);
		box.dataset.mode = parsed.kind === "none" ? "straight" : parsed.kind;
		box.dataset.stopped = stopped.join(",");
		fitNode(node);
	};

	const pointer = (e) => canvasPoint(canvas, geom, e);
	const nearest = (p) => {
		let best = null;
		let bestD = HIT;
		for (const h of handles) {
			const d = Math.hypot(h.x - p[0], h.y - p[1]);
			if (d <= bestD) {
				best = h;
				bestD = d;
			}
		}
		return best;
	};
	const writeKeys = (parsed) => setWidgetValue(node, names.keyframes, formatKeyframes(parsed));
	const moveTo = (h, p) => {
		const s = state();
		const a = anchors(s.words)[h.word];
		const f = toFrac(p[0], p[1]);
		if (h.kind === "end") {
			setWidgetValue(node, "dx", round2(clampShift(f[0] - a[0])));
			setWidgetValue(node, "dy", round2(clampShift(f[1] - a[1])));
		} else if (h.kind === "start") {
			// the end stays where it is: the source position moves, so the shift changes
			const end = h.end;
			setAnchor(h.word, f);
			setWidgetValue(node, "dx", round2(clampShift(end[0] - f[0])));
			setWidgetValue(node, "dy", round2(clampShift(end[1] - f[1])));
		} else {
			const parsed = parseKeyframes(s.text, s.frames, s.words);
			const keys = parsed.kind === "list" ? parsed.keys : parsed.paths[Object.keys(parsed.paths).find((k) => k.toLowerCase() === h.word.toLowerCase())];
			keys[h.index] = [keys[h.index][0], round2(clampShift(f[0] - a[0])), round2(clampShift(f[1] - a[1]))];
			writeKeys(parsed);
		}
		draw();
	};

	// Pointer events on the drawing stay with it: a press that misses a handle does not start a
	// canvas pan or (Nodes 2.0) a node move either, so a near miss never drags the node away.
	canvas.addEventListener("pointerdown", (e) => {
		e.stopPropagation();
		if (e.button !== 0 || drag) return;
		const p = pointer(e);
		const h = nearest(p);
		if (!h) return;
		e.preventDefault();
		if (e.altKey && h.kind === "key") {
			const s = state();
			const parsed = parseKeyframes(s.text, s.frames, s.words);
			const keys = parsed.kind === "list" ? parsed.keys : parsed.paths[Object.keys(parsed.paths).find((k) => k.toLowerCase() === h.word.toLowerCase())];
			if (keys.length > 1) {
				keys.splice(h.index, 1);
				writeKeys(parsed);
				draw();
			}
			return;
		}
		if (h.kind === "start") {
			const s = state();
			const a = anchors(s.words)[h.word];
			h.end = [a[0] + s.dx, a[1] + s.dy];
		}
		drag = h;
		followPointer(canvas, e, (ev) => moveTo(h, pointer(ev)), (ev, released) => {
			if (released) moveTo(h, pointer(ev));
			drag = null;
		});
	});
	canvas.addEventListener("dblclick", (e) => {
		if (!names.keyframes) return;
		e.preventDefault();
		e.stopPropagation();
		const s = state();
		let parsed = parseKeyframes(s.text, s.frames, s.words);
		if (parsed.kind === "error") return;
		if (parsed.kind === "none") {
			parsed = { kind: "dict", paths: Object.fromEntries(s.words.map((w) => [w, straightKeys(s.dx, s.dy, s.frames)])) };
		}
		const anc = anchors(s.words);
		const p = pointer(e);
		let best = null;
		for (const word of s.words) {
			let keys = wordKeys(parsed, word, s.dx, s.dy, s.frames);
			interpolate(keys, s.frames, s.mode).forEach(([ox, oy], f) => {
				const [x, y] = toPx(anc[word][0] + ox, anc[word][1] + oy);
				const d = Math.hypot(x - p[0], y - p[1]);
				if (!best || d < best.d) best = { d, word, frame: f };
			});
		}
		if (!best) return;
		let keys;
		if (parsed.kind === "list") keys = parsed.keys;
		else {
			const hit = Object.keys(parsed.paths).find((k) => k.toLowerCase() === best.word.toLowerCase());
			keys = hit ? parsed.paths[hit] : (parsed.paths[best.word] = straightKeys(s.dx, s.dy, s.frames));
		}
		if (keys.some((k) => k[0] === best.frame)) return;
		const f = toFrac(p[0], p[1]);
		const a = anc[best.word];
		keys.push([best.frame, round2(clampShift(f[0] - a[0])), round2(clampShift(f[1] - a[1]))]);
		keys.sort((x, y) => x[0] - y[0]);
		writeKeys(parsed);
		draw();
	});

	const widget = addViewWidget(node, WIDGET, box, () => geom.cssH + STATUS_H);
	node.attentionMotionPath = {
		// screen positions of the handles (client px), for tests and other extensions
		handles: () => {
			const r = canvas.getBoundingClientRect();
			const sx = r.width / geom.cssW;
			const sy = r.height / geom.cssH;
			return handles.map((h) => ({ ...h, end: undefined, clientX: r.left + h.x * sx, clientY: r.top + h.y * sy }));
		},
		// per word: anchor, asked and kept offsets of every frame (the drawn path), for tests
		paths: () => paths.map((p) => ({ ...p })),
		redraw: draw,
	};
	watchNode(node, () => JSON.stringify([state(), viewWidth(node, box), node.properties?.[PROP]]), () => draw());
	return widget;
}

/** Add the motion path widget to a node type of this pack with dx/dy inputs. */
export function addMotionPath(nodeType, nodeData) {
	if (!isPackNode(nodeData)) return false;
	const names = pathInputs(nodeData);
	if (!names) return false;
	chainCallback(nodeType, "onNodeCreated", "motion path widget", (node) => attach(node, names));
	return true;
}
