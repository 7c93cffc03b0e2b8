// Region JSON of Region Attention, mirroring core/boxes.parse_regions: a list of
// {"prompt", "box" | "path" | "mask", "weight"?}; boxes are [x, y, w, h] fractions of the image.
import { readJson, round2, show, strip } from "./motion_math.js";

const KEYS = ["prompt", "box", "path", "mask", "weight"];
const MAX_WEIGHT = 2; // core/boxes.MAX_REGION_WEIGHT
const EXAMPLE = '[{"prompt": "a red circle", "box": [0.1, 0.1, 0.4, 0.4]}]';
const isNumber = (v) => typeof v === "number" && isFinite(v);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Validate one [x, y, w, h] box of fractions like core/boxes.check_box; returns a copy or throws. */
export function checkBox(box, where) {
	if (!Array.isArray(box) || box.length !== 4) {
		throw new Error(`${where} is ${show(box)}; a box is [x, y, w, h], fractions of the image (e.g. [0.1, 0.2, 0.4, 0.3])`);
	}
	if (!box.every(isNumber)) throw new Error(`${where} is ${show(box)}; every value must be a finite number`);
	const [x, y, w, h] = box;
	if (w <= 0 || h <= 0) throw new Error(`${where} is ${show(box)}; width and height must be above 0`);
	if (x < -1 || y < -1 || x > 1 || y > 1 || w > 2 || h > 2) {
		throw new Error(`${where} is ${show(box)}; x, y must lie in [-1, 1] and w, h in (0, 2] ` +
			"(fractions of the image; parts outside the image are ignored)");
	}
	return box.slice();
}

function checkRegion(item, i) {
	let where = `region ${i}`;
	if (!isObject(item)) throw new Error(`${where} is ${show(item)}; each region is an object with 'prompt' and 'box'`);
	const unknown = Object.keys(item).filter((k) => !KEYS.includes(k)).sort();
	if (unknown.length) throw new Error(`${where} has unknown keys ${JSON.stringify(unknown)}; valid keys: ${KEYS.join(", ")}`);
	if (typeof item.prompt !== "string" || !strip(item.prompt)) {
		throw new Error(`${where} needs a non-empty 'prompt' (its local description, e.g. "a red circle")`);
	}
	where = `${where} ('${strip(item.prompt)}')`;
	const given = ["box", "path", "mask"].filter((k) => k in item);
	if (given.length !== 1) {
		throw new Error(`${where} must give exactly one of 'box', 'path' or 'mask' (it gives ${given.join(", ") || "none"})`);
	}
	const weight = "weight" in item ? item.weight : 1;
	if (!isNumber(weight)) throw new Error(`${where}: 'weight' is ${show(weight)}; use a number (default 1)`);
	if (weight < 0 || weight > MAX_WEIGHT) {
		throw new Error(`${where}: 'weight' is ${show(weight)}; use a number in [0, ${MAX_WEIGHT}] (default 1; it scales the schedule's weight)`);
	}
	const r = { ...item };
	if ("box" in item) r.box = checkBox(item.box, `${where} box`);
	else if ("path" in item) {
		if (!Array.isArray(item.path) || !item.path.length) throw new Error(`${where}: 'path' must be a non-empty list of boxes [x, y, w, h]`);
		r.path = item.path.map((b, j) => checkBox(b, `${where} path entry ${j}`));
	} else if (!Number.isInteger(item.mask) || item.mask < 0) {
		throw new Error(`${where}: 'mask' is ${show(item.mask)}; use the index (0, 1, ...) of a mask in the node's MASK input`);
	}
	return r;
}

/**
 * Parse the regions text with the rules of core/boxes.parse_regions (same valid inputs, same first
 * error). Returns {kind: "none"} for empty text, {kind: "ok", regions} or {kind: "error", message}.
 * Each region keeps every key it had (its prompt as written); regionSpec gives the node's view of it.
 */
export function parseRegions(text) {
	text = strip(String(text ?? ""));
	if (!text) return { kind: "none", regions: [] };
	try {
		let data = readJson(text, "", EXAMPLE);
		if (isObject(data)) data = [data];
		if (!Array.isArray(data)) throw new Error(`expected a list of regions like ${EXAMPLE}, got ${show(data)}`);
		return { kind: "ok", regions: data.map(checkRegion) };
	} catch (e) {
		return { kind: "error", message: e.message };
	}
}

/** A parsed region as core/boxes.RegionSpec holds it: {prompt (stripped), path (boxes or null), mask, weight}. */
export function regionSpec(region) {
	const path = Array.isArray(region.box) ? [region.box] : Array.isArray(region.path) ? region.path : null;
	return { prompt: strip(region.prompt), path, mask: path ? null : region.mask + 0, weight: region.weight ?? 1 };
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
