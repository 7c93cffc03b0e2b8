// Token view: on every node of this pack that takes a prompt and words, show how the prompt
// tokenizes (words, token positions, 77-token chunks) and which chosen words are not found.
// The tokenization comes from the host's own SD1 tokenizer (POST /attention_motion/tokenize).
import { api } from "../../scripts/api.js";
import {
	PALETTE, addViewWidget, chainCallback, ensureCss, el, entryLabel, findWidget, fitNode, inputEntries, inputType, isPackNode, parseWordList,
	tokenMarks, watchNode,
} from "./am_common.js";

const ROUTE = "/attention_motion/tokenize";
const WIDGET = "attention_motion_tokens";
const MAX_HEIGHT = 220;
const RETRY_MS = 500; // first retry after a failed request (then 1 s, 2 s)
const MAX_RETRIES = 3;

const isPromptName = (n) => /(^|_)prompts?$/.test(n) || /^prompts?_/.test(n);
// word lists: "words", "<x>_words", "words_<x>"; P2P's "reweight" holds "word: factor" entries
const isWordsName = (n) => /(^|_)words$/.test(n) || /^words_/.test(n) || n === "reweight";
const isMultiLine = (n) => /prompts(_|$)/.test(n); // "target_prompts": one prompt per line

/**
 * The token inputs of a node definition (data-driven), or null when it has no prompt or no words:
 * {prompts: [names], words: [{name, prompts: [names it is looked up in]}]}.
 */
export function tokenInputs(nodeData) {
	const strings = inputEntries(nodeData).filter(([, spec]) => inputType(spec) === "STRING").map(([n]) => n);
	const prompts = strings.filter(isPromptName);
	const words = strings.filter((n) => isWordsName(n) && !isPromptName(n));
	if (!prompts.length || !words.length) return null;
	return {
		prompts,
		words: words.map((name) => {
			const prefix = name.replace(/_?words$/, "").replace(/^words_?/, "");
			const own = prompts.filter((p) => prefix && p.replace(/_?prompts?$/, "") === prefix);
			const targets = name === "reweight" ? prompts.filter((p) => p.startsWith("target")) : [];
			return { name, prompts: own.length ? own : targets.length ? targets : prompts };
		}),
	};
}

/** Entries of a word list; "word: 0.5" entries (P2P) count as their word. */
export function wordEntries(spec) {
	return parseWordList(spec).map((e) => {
		const m = /^(.*?)\s*:\s*[-+]?[\d.]+(e[-+]?\d+)?$/i.exec(e);
		return m ? m[1].trim() : e;
	}).filter(Boolean);
}

async function tokenize(prompt, words, bind) {
	const resp = await api.fetchApi(ROUTE, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify(bind == null ? { prompt, words } : { prompt, words, bind }),
	});
	const data = await resp.json().catch(() => ({}));
	if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
	return data;
}

function renderSection(label, data, colours) {
	const marks = tokenMarks(data.entries, colours);
	const n = data.chunks.length;
	const used = data.chunks.reduce((s, c) => s + c.length, 0);
	const sec = el("div", { class: "am-section", "data-prompt": label });
	sec.append(el("div", {
		class: "am-head",
		text: `${label}: ${data.words.length} words, ${used} tokens in ${n} chunk${n === 1 ? "" : "s"} of ${data.chunk_length}`,
	}));
	data.chunks.forEach((chunk, c) => {
		const row = el("div", { class: "am-chunk", "data-chunk": String(c), title: `chunk ${c + 1}: positions ${c * data.chunk_length}-${(c + 1) * data.chunk_length - 1}` });
		for (const t of chunk) {
			const special = t.token.startsWith("<");
			const chip = el("span", { class: "am-tok" + (special ? " am-special" : ""), "data-pos": String(t.pos), title: `position ${t.pos}` },
				special ? t.token.slice(1, -1) : t.token, el("sub", { text: String(t.pos) }));
			const mark = marks.get(t.pos);
			if (mark?.bound) {
				chip.classList.add("am-bound");
				chip.style.setProperty("--am-c", mark.colour);
				chip.title += `: moves with "${mark.entry}" (bind: noun phrase)`;
			} else if (mark) {
				chip.classList.add("am-chosen");
				chip.style.background = mark.colour;
			}
			row.append(chip);
		}
		sec.append(row);
	});
	const found = data.entries.filter((e) => e.found);
	if (found.length) {
		const words = el("div", { class: "am-words" });
		found.forEach((e, i) => {
			const s = el("span", { "data-entry": e.entry, text: entryLabel(e) });
			if (e.bound?.length) s.title = `${e.bound_words.join(", ")}: move${e.bound_words.length === 1 ? "s" : ""} with "${e.entry}" (bind: noun phrase)`;
			s.style.color = colours.get(e.entry);
			if (i) words.append(" · ");
			words.append(s);
		});
		sec.append(words);
	}
	return sec;
}

function attach(node, spec) {
	ensureCss();
	const box = el("div", { class: "am-view am-tokens", "data-status": "pending" });
	let height = 60;
	const widget = addViewWidget(node, WIDGET, box, () => height);
	let seq = 0;
	let timer;
	let failures = 0;

	const values = () => ({
		prompts: spec.prompts.map((p) => {
			const pw = findWidget(node, p);
			const text = String(pw?.value ?? "");
			const linked = pw?.type === "converted-widget" || !!node.inputs?.find((i) => i.name === p && i.link != null);
			const lines = isMultiLine(p) ? text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean) : [text];
			return { name: p, lines, linked };
		}),
		words: spec.words.map((w) => ({ ...w, entries: wordEntries(findWidget(node, w.name)?.value ?? "") })),
		bind: findWidget(node, "bind")?.value ?? null, // TokenShift, FrameSequence: what moves with a word
	});

	const update = async () => {
		const my = ++seq;
		const v = values();
		box.dataset.status = "pending";
		const colours = new Map();
		for (const w of v.words) for (const e of w.entries) if (!colours.has(e)) colours.set(e, PALETTE[colours.size % PALETTE.length]);
		// a word list whose own prompts are all empty is looked up in the others (P2P: reweight of
		// the source prompt when there is no target line)
		for (const w of v.words) {
			const filled = w.prompts.filter((n) => v.prompts.find((p) => p.name === n)?.lines.some(Boolean));
			if (!filled.length) w.prompts = v.prompts.map((p) => p.name);
		}
		// one request per prompt line, with the words looked up in that prompt
		const jobs = [];
		for (const p of v.prompts) {
			const entries = [...new Set(v.words.filter((w) => w.prompts.includes(p.name)).flatMap((w) => w.entries))];
			p.lines.forEach((line, i) => {
				const label = (p.lines.length > 1 ? `${p.name} line ${i + 1}` : p.name) + (p.linked ? " (linked: widget value)" : "");
				jobs.push({ prompt: p.name, label, line, entries });
			});
		}
		let parts;
		try {
			const answers = await Promise.all(jobs.map((j) => tokenize(j.line, j.entries.join(", "), v.bind)));
			if (my !== seq) return;
			parts = jobs.map((j, i) => renderSection(j.label, answers[i], colours));
			const missing = [];
			for (const w of v.words) {
				for (const e of w.entries) {
					const hit = jobs.some((j, i) => w.prompts.includes(j.prompt) && answers[i].entries.some((a) => a.entry === e && a.found));
					if (!hit) missing.push(e);
				}
			}
			if (missing.length) parts.push(el("div", { class: "am-missing", text: `not in the prompt: ${missing.join(", ")}` }));
			if (!jobs.length) parts.push(el("div", { class: "am-head", text: "no prompt text yet" }));
			box.dataset.status = missing.length ? "missing" : "ok";
			box.dataset.missing = missing.join(", ");
			node.attentionMotionTokens = answers; // for other extensions and tests
			failures = 0;
		} catch (e) {
			if (my !== seq) return;
			parts = [el("div", { class: "am-error", text: `token view unavailable: ${e.message}` })];
			box.dataset.status = "error";
			// a busy or restarting server: ask again a few times, later each time
			if (failures < MAX_RETRIES) timer = setTimeout(update, RETRY_MS * 2 ** failures++);
		}
		box.replaceChildren(...parts);
		height = Math.min(MAX_HEIGHT, Math.max(40, box.scrollHeight + 24));
		fitNode(node);
	};

	watchNode(node, () => JSON.stringify(values()), () => {
		clearTimeout(timer);
		failures = 0;
		timer = setTimeout(update, 200);
	});
	return widget;
}

/** Add the token view to a node type of this pack that takes a prompt and words. */
export function addTokenView(nodeType, nodeData) {
	if (!isPackNode(nodeData)) return false;
	const spec = tokenInputs(nodeData);
	if (!spec) return false;
	chainCallback(nodeType, "onNodeCreated", "token view", (node) => attach(node, spec));
	return true;
}
