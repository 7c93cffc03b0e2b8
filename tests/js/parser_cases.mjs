// Runs every case of tests/parser_cases.json through the frontend's parsers (js/motion_math.js,
// js/region_math.js) and prints one outcome per case as JSON: {"keyframes": [...], "regions": [...]},
// each {"valid": true, "result": ...} or {"valid": false, "error": message}. tests/test_parser_agreement.py
// compares them with the table and with the Python parsers.
// Usage: node tests/js/parser_cases.mjs [cases.json]
import { readFileSync } from "node:fs";
import { keysByWord, parseKeyframes } from "../../js/motion_math.js";
import { parseRegions, regionSpec } from "../../js/region_math.js";

/** The text of a case: a string, or [piece, count] pairs joined ("{i}" in a piece: the repetition's index). */
export function caseText(text) {
	if (typeof text === "string") return text;
	return text.map(([piece, count]) => (piece.includes("{i}")
		? Array.from({ length: count }, (_, i) => piece.replaceAll("{i}", String(i))).join("")
		: piece.repeat(count))).join("");
}

const path = process.argv[2] ?? new URL("../parser_cases.json", import.meta.url);
const table = JSON.parse(readFileSync(path, "utf8"));
const defaults = table.keyframe_defaults;

const keyframes = table.keyframes.map((c) => {
	const frames = c.frames ?? defaults.frames;
	const words = c.words ?? defaults.words;
	const parsed = parseKeyframes(caseText(c.text), frames, words);
	return parsed.kind === "error" ? { valid: false, error: parsed.message } : { valid: true, result: keysByWord(parsed, words) };
});
const regions = table.regions.map((c) => {
	const parsed = parseRegions(caseText(c.text));
	return parsed.kind === "error" ? { valid: false, error: parsed.message } : { valid: true, result: parsed.regions.map(regionSpec) };
});
process.stdout.write(JSON.stringify({ keyframes, regions }) + "\n");
