// Region JSON of Region Attention, mirroring core/boxes.parse_regions: a list of
// {"prompt", "box" | "path" | "mask", "weight"?}; boxes are [x, y, w, h] fractions of the image.
import { round2 } from "./motion_math.js";

const KEYS = ["prompt", "box", "path", "mask", "weight"];

function checkBox(box, where) {
	if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => typeof v === "number" && isFinite(v))) {
		throw new Error(`${where} must be [x, y, w, h]`);
	}
	if (box[2] <= 0 || box[3] <= 0) throw new Error(`${where}: width and height must be above 0`);
	return box.slice();
}

/**
 * Parse the regions text. Returns {kind: "none"} for empty text, {kind: "ok", regions} or
 * {kind: "error", message}. Each region keeps every key it had; `boxes` lists its drawable boxes
 * (one for "box", the keyframe boxes for "path", none for "mask").
 */
export function parseRegions(text) {
	text = String(text ?? "").trim();
	if (!text) return { kind: "none", regions: [] };
	let data;
	try {
		data = JSON.parse(text);
	} catch (e) {
		return { kind: "error", message: "regions are not valid JSON" };
	}
	if (data && !Array.isArray(data) && typeof data === "object") data = [data];
	if (!Array.isArray(data)) return { kind: "error", message: "regions must be a JSON list" };
	try {
		const regions = data.map((item, i) => {
			if (!item || typeof item !== "object" || Array.isArray(item)) throw new Error(`region ${i} is not an object`);
			const unknown = Object.keys(item).filter((k) => !KEYS.includes(k));
			if (unknown.length) throw new Error(`region ${i} has unknown keys ${unknown.join(", ")}`);
			const r = { ...item };
			if ("box" in item) r.box = checkBox(item.box, `region ${i} box`);
			if ("path" in item) {
				if (!Array.isArray(item.path) || !item.path.length) throw new Error(`region ${i} path must list boxes`);
				r.path = item.path.map((b, j) => checkBox(b, `region ${i} path entry ${j}`));
			}
			return r;
		});
		return { kind: "ok", regions };
	} catch (e) {
		return { kind: "error", message: e.message };
	}
}

/** The boxes drawn for a region: its box, or every box of its path; [] for a mask region. */
export function regionBoxes(region) {
	if (Array.isArray(region.box)) return [region.box];
	if (Array.isArray(region.path)) return region.path;
	return [];
}

/** Serialise regions one per line, keys in the documented order, numbers to 2 decimals. */
export function formatRegions(regions) {
	const box = (b) => "[" + b.map(round2).join(", ") + "]";
	const value = (k, v) => (k === "box" ? box(v) : k === "path" ? "[" + v.map(box).join(", ") + "]" : JSON.stringify(v));
	const lines = regions.map((r) => "{" + KEYS.filter((k) => k in r).map((k) => `"${k}": ${value(k, r[k])}`).join(", ") + "}");
	return "[" + lines.join(",\n ") + "]";
}

/** Move a box so its top-left is (x, y), kept within the range the node accepts. */
export function moveBox(box, x, y) {
	return [Math.max(-1, Math.min(1, x)), Math.max(-1, Math.min(1, y)), box[2], box[3]];
}

/** Resize a box by dragging its bottom-right corner to (x2, y2); at least `min` wide and high. */
export function resizeBox(box, x2, y2, min = 0.02) {
	return [box[0], box[1], Math.min(2, Math.max(min, x2 - box[0])), Math.min(2, Math.max(min, y2 - box[1]))];
}
