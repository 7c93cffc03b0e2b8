// Motion-path arithmetic of the frontend, mirroring core/motion.py (straight path, keyframes,
// linear / ease-in-out interpolation). Offsets are fractions of the image width and height.

export const clampShift = (v) => Math.max(-1, Math.min(1, v));
export const round2 = (v) => Math.round(v * 100) / 100 + 0; // +0 turns -0 into 0

export const EDGE_MARGIN = 0.15; // as core/shift.EDGE_MARGIN

/**
 * The edge rule of the nodes (core/shift.clamp_offset, centre part): the part of ``offset`` [dx, dy]
 * that keeps a word centred at ``centre`` [x, y] at least ``margin`` inside the frame; a centre
 * already closer than that is not pushed inward. Moves that stay inside are returned unchanged.
 */
export function clampOffset(centre, offset, margin = EDGE_MARGIN) {
	return centre.map((c, i) => {
		const dest = c + offset[i];
		const kept = Math.min(Math.max(dest, Math.min(c, margin)), Math.max(c, 1 - margin));
		return kept === dest ? offset[i] : kept - c;
	});
}

export function ease(t, mode) {
	t = Math.max(0, Math.min(1, t));
	return mode === "ease-in-out" ? 0.5 - 0.5 * Math.cos(Math.PI * t) : t;
}

export const MAX_TEXT = 200000; // characters of a keyframes / regions text, as core/motion.MAX_TEXT
export const MAX_DEPTH = 32; // bracket nesting, as core/motion.MAX_DEPTH
const KEYFRAMES_EXAMPLE = '[[0, 0, 0], [15, 0.3, 0]] or {"cat": [[0, 0, 0], [15, 0.3, 0]]}';

// the characters Python's str.strip() removes (String.trim differs: it keeps \x1c-\x1f, \x85 and drops \ufeff)
const isSpace = (c) => (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
	(c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;

/** The text without leading and trailing whitespace, exactly as Python's str.strip(). */
export function strip(text) {
	let a = 0;
	let b = text.length;
	while (a < b && isSpace(text.charCodeAt(a))) a++;
	while (b > a && isSpace(text.charCodeAt(b - 1))) b--;
	return text.slice(a, b);
}

/** A JSON value for an error message, cut to 60 characters. */
export function show(value) {
	const text = String(JSON.stringify(value));
	return text.length <= 60 ? text : text.slice(0, 57) + "...";
}

function tooDeep(text) {
	let depth = 0;
	let inString = false;
	let escaped = false;
	for (const ch of text) {
		if (inString) {
			if (escaped) escaped = false;
			else if (ch === "\\") escaped = true;
			else if (ch === '"') inString = false;
		} else if (ch === '"') inString = true;
		else if (ch === "[" || ch === "{") {
			if (++depth > MAX_DEPTH) return true;
		} else if (ch === "]" || ch === "}") depth--;
	}
	return false;
}

/**
 * Parse a stripped, non-empty JSON text like core/motion.read_json: throws, after `subject`
 * ("keyframes are", or ""), for a text over MAX_TEXT characters (code points, as Python counts),
 * nesting over MAX_DEPTH brackets, or invalid JSON.
 */
export function readJson(text, subject, example) {
	const say = subject ? `${subject} ` : "";
	if (text.length > MAX_TEXT) {
		let n = 0;
		for (const _ of text) n++; // code points
		if (n > MAX_TEXT) throw new Error(`${say}too long (${n} characters; at most ${MAX_TEXT})`);
	}
	if (tooDeep(text)) throw new Error(`${say}nested too deeply (more than ${MAX_DEPTH} brackets); write e.g. ${example}`);
	try {
		return JSON.parse(text);
	} catch (e) {
		throw new Error(`${say}not valid JSON (${e.message}); write e.g. ${example}`);
	}
}

const isNumber = (v) => typeof v === "number" && isFinite(v);

function number(value, what) {
	if (!isNumber(value)) throw new Error(`${what} must be a finite number, got ${show(value)}`);
	return value;
}

function checkShift(value, what) {
	if (Math.abs(value) > 1) {
		throw new Error(`${what} is ${value}, out of range: shifts are fractions of the image size between -1 and 1`);
	}
	return value;
}

function parseList(items, frames, where) {
	if (!Array.isArray(items) || !items.length) {
		throw new Error(`${where} must be a non-empty list of [frame, dx, dy] entries, e.g. [[0, 0, 0], [15, 0.3, 0]]`);
	}
	const seen = new Set();
	const keys = items.map((item, i) => {
		if (!Array.isArray(item) || item.length !== 3) throw new Error(`${where} entry ${i} is ${show(item)}: each entry must be [frame, dx, dy]`);
		const frame = number(item[0], `${where} entry ${i}: frame`) + 0; // +0 turns -0 into 0
		if (!Number.isInteger(frame)) throw new Error(`${where} entry ${i}: frame ${show(item[0])} must be a whole number`);
		if (frame < 0 || frame >= frames) throw new Error(`${where} entry ${i}: frame ${frame} is outside the clip (frames 0..${frames - 1})`);
		if (seen.has(frame)) throw new Error(`${where} entry ${i}: frame ${frame} has more than one keyframe`);
		seen.add(frame);
		const dx = checkShift(number(item[1], `${where} entry ${i}: dx`), `${where} entry ${i}: dx`);
		const dy = checkShift(number(item[2], `${where} entry ${i}: dy`), `${where} entry ${i}: dy`);
		return [frame, dx, dy];
	});
	return keys.sort((a, b) => a[0] - b[0]);
}

/**
 * Parse the keyframes text of a clip of `frames` frames moving `words`, with the rules of
 * core/motion.parse_keyframes (same valid inputs, same first error).
 * Returns {kind: "none"} for empty text, {kind: "list", keys} (one path for every word),
 * {kind: "dict", paths: {name: keys}} (names as written; match words case-insensitively), or
 * {kind: "error", message}. keys: [[frame, dx, dy], ...] sorted by frame.
 */
export function parseKeyframes(text, frames, words) {
	text = strip(String(text ?? ""));
	if (!text) return { kind: "none" };
	try {
		const data = readJson(text, "keyframes are", KEYFRAMES_EXAMPLE);
		if (data === null || typeof data !== "object" || Array.isArray(data)) {
			return { kind: "list", keys: parseList(data, frames, "keyframes") };
		}
		const known = new Set(words.map((w) => w.toLowerCase()));
		const names = new Map(); // lower-case name -> the name as written
		for (const name of Object.keys(data)) {
			const low = name.toLowerCase();
			if (!known.has(low)) throw new Error(`keyframes name the word ${show(name)}, which is not among the moving words ${show(words)}`);
			if (names.has(low)) throw new Error(`keyframes name the word ${show(name)} twice (also as ${show(names.get(low))}); give one path per word`);
			names.set(low, name);
		}
		const paths = Object.create(null); // any word may be a key, "__proto__" too
		for (const w of words) { // in the words' order, like the node
			const name = names.get(w.toLowerCase());
			if (name !== undefined && !Object.hasOwn(paths, name)) paths[name] = parseList(data[name], frames, `keyframes of ${show(name)}`);
		}
		return { kind: "dict", paths };
	} catch (e) {
		return { kind: "error", message: e.message };
	}
}

/** {word: keys} of the words that follow keyframes, as core/motion.parse_keyframes returns (null: none). */
export function keysByWord(parsed, words) {
	if (parsed.kind !== "list" && parsed.kind !== "dict") return null;
	const out = {};
	for (const w of words) {
		const hit = parsed.kind === "list" ? "" : Object.keys(parsed.paths).find((k) => k.toLowerCase() === w.toLowerCase());
		if (hit !== undefined) out[w] = parsed.kind === "list" ? parsed.keys : parsed.paths[hit];
	}
	return out;
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
