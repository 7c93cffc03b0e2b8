// Region box widget: on nodes of this pack with a "regions" JSON input (Region Attention), draw
// every region's box (or each keyframe box of a moving region's path) over the image. Dragging a
// box moves it, dragging its corner resizes it, double-click adds a region, alt-click removes a
// box; every edit writes the regions JSON exactly as a user could type it, and typing redraws.
import { addViewWidget, canvasPoint, chainCallback, followPointer, paintCanvas, ensureCss, el, findWidget, fitNode, inputEntries, inputType, isPackNode, setStatus, setWidgetValue, viewWidth, watchNode, PALETTE } from "./am_common.js";
import { formatRegions, moveBox, parseRegions, regionBoxes, resizeBox } from "./region_math.js";
import { round2 } from "./motion_math.js";

const WIDGET = "attention_motion_regions";
const PAD = 10;
const MAX_H = 200;
const STATUS_H = 28 + 20;
const CORNER = 9;
const NEW_SIZE = 0.3;

/** The regions input name of a node definition, or null. */
export function regionsInput(nodeData) {
	const hit = inputEntries(nodeData).find(([n, s]) => n === "regions" && inputType(s) === "STRING");
	return hit ? hit[0] : null;
}

function attach(node, name) {
	ensureCss();
	const canvas = el("canvas");
	const status = el("div", { class: "am-status" });
	const box = el("div", { class: "am-path am-regions" }, canvas, status);
	let geom = { imgW: 100, imgH: 100, cssW: 120, cssH: 120 };
	let hits = []; // {region, index, rect: [x, y, w, h] in px}
	let drag = null;

	const text = () => String(findWidget(node, name)?.value ?? "");
	const layout = () => {
		const side = Math.min(MAX_H, Math.max(60, viewWidth(node, box) - 2 * PAD));
		geom = { imgW: side, imgH: side, cssW: side + 2 * PAD, cssH: side + 2 * PAD };
	};
	const toPx = (fx, fy) => [PAD + fx * geom.imgW, PAD + fy * geom.imgH];
	const toFrac = (px, py) => [(px - PAD) / geom.imgW, (py - PAD) / geom.imgH];

	const draw = () => {
		layout();
		const ctx = paintCanvas(canvas, geom, PAD);
		const parsed = parseRegions(text());
		hits = [];
		if (parsed.kind === "ok") {
			parsed.regions.forEach((r, ri) => {
				const colour = PALETTE[ri % PALETTE.length];
				const boxes = regionBoxes(r);
				const centres = boxes.map((b) => toPx(b[0] + b[2] / 2, b[1] + b[3] / 2));
				if (centres.length > 1) {
					ctx.strokeStyle = colour;
					ctx.setLineDash([4, 3]);
					ctx.beginPath();
					centres.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
					ctx.stroke();
					ctx.setLineDash([]);
				}
				boxes.forEach((b, bi) => {
					const [x, y] = toPx(b[0], b[1]);
					const w = b[2] * geom.imgW;
					const h = b[3] * geom.imgH;
					ctx.fillStyle = colour + "33";
					ctx.fillRect(x, y, w, h);
					ctx.strokeStyle = colour;
					ctx.lineWidth = 2;
					ctx.strokeRect(x, y, w, h);
					ctx.fillStyle = colour;
					ctx.fillRect(x + w - CORNER / 2, y + h - CORNER / 2, CORNER, CORNER);
					ctx.font = "bold 10px sans-serif";
					const label = boxes.length > 1 ? `${r.prompt ?? ""} [${bi}]` : String(r.prompt ?? "");
					ctx.fillText(label, x + 3, y + 12);
					hits.push({ region: ri, index: bi, rect: [x, y, w, h] });
				});
			});
		}
		const n = parsed.kind === "ok" ? parsed.regions.length : 0;
		setStatus(status, parsed.kind === "error"
			? parsed.message
			: `${n} region${n === 1 ? "" : "s"} (fractions of the image); drag a box to move, its corner to resize; ` +
			  "double-click adds a region, alt-click removes a box", parsed.kind === "error");
		fitNode(node);
	};

	const pointer = (e) => canvasPoint(canvas, geom, e);
	const hitAt = (p) => {
		for (let i = hits.length - 1; i >= 0; i--) {
			const [x, y, w, h] = hits[i].rect;
			if (Math.abs(p[0] - (x + w)) <= CORNER && Math.abs(p[1] - (y + h)) <= CORNER) return { ...hits[i], kind: "corner" };
		}
		for (let i = hits.length - 1; i >= 0; i--) {
			const [x, y, w, h] = hits[i].rect;
			if (p[0] >= x && p[0] <= x + w && p[1] >= y && p[1] <= y + h) return { ...hits[i], kind: "move" };
		}
		return null;
	};
	const edit = (fn) => {
		const parsed = parseRegions(text());
		if (parsed.kind === "error") return;
		fn(parsed.regions);
		setWidgetValue(node, name, formatRegions(parsed.regions));
		draw();
	};
	const setBox = (regions, h, b) => {
		const r = regions[h.region];
		if (Array.isArray(r.box)) r.box = b;
		else r.path[h.index] = b;
	};
	const apply = (p) => {
		const f = toFrac(p[0], p[1]);
		edit((regions) => {
			const b = regionBoxes(regions[drag.region])[drag.index];
			setBox(regions, drag, drag.kind === "corner"
				? resizeBox(b, f[0], f[1])
				: moveBox(b, round2(f[0] - drag.grab[0]), round2(f[1] - drag.grab[1])));
		});
	};

	// Pointer events on the drawing stay with it (no canvas pan or Nodes 2.0 node move on a miss).
	canvas.addEventListener("pointerdown", (e) => {
		e.stopPropagation();
		if (e.button !== 0 || drag) return;
		const p = pointer(e);
		const h = hitAt(p);
		if (!h) return;
		e.preventDefault();
		if (e.altKey) {
			edit((regions) => {
				const r = regions[h.region];
				if (Array.isArray(r.path) && r.path.length > 1) r.path.splice(h.index, 1);
				else regions.splice(h.region, 1);
			});
			return;
		}
		const f = toFrac(p[0], p[1]);
		const b = regionBoxes(parseRegions(text()).regions[h.region])[h.index];
		drag = { ...h, grab: [f[0] - b[0], f[1] - b[1]] };
		followPointer(canvas, e, (ev) => apply(pointer(ev)), (ev, released) => {
			if (released) apply(pointer(ev));
			drag = null;
		});
	});
	canvas.addEventListener("dblclick", (e) => {
		const p = pointer(e);
		if (hitAt(p)) return;
		e.preventDefault();
		e.stopPropagation();
		const f = toFrac(p[0], p[1]);
		const parsed = parseRegions(text());
		if (parsed.kind === "error") return;
		parsed.regions.push({ prompt: "an object", box: [round2(f[0] - NEW_SIZE / 2), round2(f[1] - NEW_SIZE / 2), NEW_SIZE, NEW_SIZE] });
		setWidgetValue(node, name, formatRegions(parsed.regions));
		draw();
	});

	const widget = addViewWidget(node, WIDGET, box, () => geom.cssH + STATUS_H);
	node.attentionMotionRegions = {
		// client-pixel rectangles of the drawn boxes, for tests and other extensions
		boxes: () => {
			const r = canvas.getBoundingClientRect();
			const sx = r.width / geom.cssW;
			const sy = r.height / geom.cssH;
			return hits.map((h) => ({ region: h.region, index: h.index, left: r.left + h.rect[0] * sx, top: r.top + h.rect[1] * sy,
				width: h.rect[2] * sx, height: h.rect[3] * sy }));
		},
		redraw: draw,
	};
	watchNode(node, () => JSON.stringify([text(), viewWidth(node, box)]), () => draw());
	return widget;
}

/** Add the region box widget to a node type of this pack with a "regions" input. */
export function addRegionBoxes(nodeType, nodeData) {
	if (!isPackNode(nodeData)) return false;
	const name = regionsInput(nodeData);
	if (!name) return false;
	chainCallback(nodeType, "onNodeCreated", "region box widget", (node) => attach(node, name));
	return true;
}
