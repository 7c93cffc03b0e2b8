// Node unit tests of the token view's pure helpers (js/am_common.js tokenMarks, entryLabel), on
// tokenize answers of the route (host/routes.py) for "a photo of a red ball on a green lawn".
// Usage: node --test tests/js/token_view_helpers.test.mjs (tests/test_token_view_js.py runs it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { entryLabel, tokenMarks } from "../../js/am_common.js";

const colours = new Map([["ball", "#ffd166"], ["lawn", "#06d6a0"], ["dog", "#4cc9f0"]]);
const nounPhrase = [
	{ entry: "ball", positions: [6], found: true, bound: [5], bound_words: ["red"] },
	{ entry: "lawn", positions: [10], found: true, bound: [9], bound_words: ["green"] },
	{ entry: "dog", positions: [], found: false, bound: [], bound_words: [] },
];
const typedWords = nounPhrase.map(({ entry, positions, found }) => ({ entry, positions, found }));

test("noun phrase: the typed tokens are chosen, their modifiers bound, in the entry's colour", () => {
	const marks = tokenMarks(nounPhrase, colours);
	assert.deepEqual([...marks.keys()].sort((a, b) => a - b), [5, 6, 9, 10]);
	assert.deepEqual(marks.get(6), { colour: "#ffd166", entry: "ball", bound: false });
	assert.deepEqual(marks.get(5), { colour: "#ffd166", entry: "ball", bound: true });
	assert.deepEqual(marks.get(9), { colour: "#06d6a0", entry: "lawn", bound: true });
});

test("typed words: only the typed tokens are marked", () => {
	const marks = tokenMarks(typedWords, colours);
	assert.deepEqual([...marks.keys()].sort((a, b) => a - b), [6, 10]);
	assert.ok([...marks.values()].every((m) => !m.bound));
});

test("a typed token stays chosen when another entry would bind it", () => {
	const entries = [
		{ entry: "ball", positions: [6], bound: [5], bound_words: ["red"] },
		{ entry: "red", positions: [5], bound: [], bound_words: [] },
	];
	assert.deepEqual(tokenMarks(entries, new Map([["ball", "a"], ["red", "b"]])).get(5), { colour: "b", entry: "red", bound: false });
});

test("labels name the bound words and their positions", () => {
	assert.equal(entryLabel(nounPhrase[0]), "ball (+ red) → 6 (+ 5)");
	assert.equal(entryLabel({ entry: "chair", positions: [7], bound: [4, 5, 6], bound_words: ["old", "wooden"] }),
		"chair (+ old wooden) → 7 (+ 4 5 6)");
	assert.equal(entryLabel(typedWords[0]), "ball → 6");
	assert.equal(entryLabel({ entry: "circle", positions: [3, 9], bound: [], bound_words: [] }), "circle → 3 9");
});
