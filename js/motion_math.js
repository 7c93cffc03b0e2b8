// Motion-path arithmetic of the frontend, mirroring core/motion.py (straight path, keyframes,
// linear / ease-in-out interpolation). Offsets are fractions of the image width and height.

export const clampShift = (v) => Math.max(-1, Math.min(1, v));
export const round2 = (v) => Math.round(v * 100) / 100 + 0; // +0 turns -0 into 0

export function ease(t, mode) {
	t = Math.max(0, Math.min(1, t));
	return mode === "ease-in-out" ? 0.5 - 0.5 * Math.cos(Math.PI * t) : t;
}

/**
 * Parse the keyframes text like core/motion.parse_keyframes.
 * Returns {kind: "none"} for empty text, {kind: "list", keys} (one path for every word),
 * {kind: "dict", paths: {word: keys}}, or {kind: "error", message}. keys: [[frame, dx, dy], ...].
 */
export function parseKeyframes(text) {
	text = String(text ?? "").trim();
	if (!text) return { kind: "none" };
	let data;
	try {
		data = JSON.parse(text);
	} catch (e) {
		return { kind: "error", message: "keyframes are not valid JSON" };
	}
	const check = (items, where) => {
		if (!Array.isArray(items) || !items.length) throw new Error(`${where} must be a non-empty list of [frame, dx, dy]`);
		for (const it of items) {
			if (!Array.isArray(it) || it.length !== 3 || !it.every((v) => typeof v === "number" && isFinite(v))) {
				throw new Error(`${where}: each entry must be [frame, dx, dy]`);
			}
		}
		return items.map((it) => [Math.round(it[0]), it[1], it[2]]).sort((a, b) => a[0] - b[0]);
	};
	try {
		if (Array.isArray(data)) return { kind: "list", keys: check(data, "keyframes") };
		if (data && typeof data === "object") {
			const paths = {};
			for (const [w, items] of Object.entries(data)) paths[w] = check(items, `keyframes of '${w}'`);
			return { kind: "dict", paths };
		}
	} catch (e) {
		return { kind: "error", message: e.message };
	}
	return { kind: "error", message: "keyframes must be a list or an object" };
}

/** Offsets [[dx, dy] per frame] through sorted keys, held flat before/after the ends. */
export function interpolate(keys, frames, mode) {
	const out = [];
	for (let f = 0; f < frames; f++) {
		if (f <= keys[0][0]) out.push([keys[0][1], keys[0][2]]);
		else if (f >= keys[keys.length - 1][0]) out.push([keys[keys.length - 1][1], keys[keys.length - 1][2]]);
		else {
			for (let i = 0; i + 1 < keys.length; i++) {
				const [f0, x0, y0] = keys[i];
				const [f1, x1, y1] = keys[i + 1];
				if (f0 <= f && f <= f1) {
					const t = ease((f - f0) / (f1 - f0), mode);
					out.push([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]);
					break;
				}
			}
		}
	}
	return out;
}

export function straightKeys(dx, dy, frames) {
	return frames <= 1 ? [[0, 0, 0]] : [[0, 0, 0], [frames - 1, dx, dy]];
}

/** Keys of one word's path: its keyframes when the text names it (or is a list), else straight. */
export function wordKeys(parsed, word, dx, dy, frames) {
	if (parsed.kind === "list") return parsed.keys;
	if (parsed.kind === "dict") {
		const hit = Object.keys(parsed.paths).find((k) => k.toLowerCase() === word.toLowerCase());
		if (hit) return parsed.paths[hit];
	}
	return straightKeys(dx, dy, frames);
}

/** Keyframes JSON written compactly, one path per word: {"cat": [[0, 0, 0], [15, 0.3, 0]]}. */
export function formatKeyframes(parsed) {
	const keys = (ks) => "[" + ks.map((k) => `[${k[0]}, ${round2(k[1])}, ${round2(k[2])}]`).join(", ") + "]";
	if (parsed.kind === "list") return keys(parsed.keys);
	if (parsed.kind === "dict") {
		return "{" + Object.entries(parsed.paths).map(([w, ks]) => `${JSON.stringify(w)}: ${keys(ks)}`).join(", ") + "}";
	}
	return "";
}
