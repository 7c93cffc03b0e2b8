// Token view: on every node of this pack that takes a prompt and words, show how the prompt
// tokenizes (words, token positions, 77-token chunks) and which chosen words are not found.
// The tokenization comes from the host's own SD1 tokenizer (POST /attention_motion/tokenize).
import { api } from "../../scripts/api.js";
import {
	PALETTE, addViewWidget, ensureCss, el, findWidget, fitNode, inputEntries, inputType, isPackNode, watchNode,
} from "./am_common.js";

const ROUTE = "/attention_motion/tokenize";
const WIDGET = "attention_motion_tokens";
const MAX_HEIGHT = 220;

const isPromptName = (n) => /(^|_)prompts?$/.test(n) || /^prompts?_/.test(n);
const isWordsName = (n) => /(^|_)words$/.test(n) || /^words_/.test(n);

/** Which prompt each words input belongs to: {prompt name: [words names]} (data-driven). */
export function tokenInputs(nodeData) {
	const strings = inputEntries(nodeData).filter(([, spec]) => inputType(spec) === "STRING").map(([n]) => n);
	const prompts = strings.filter(isPromptName);
	const words = strings.filter(isWordsName);
	if (!prompts.length || !words.length) return null;
	const pairs = Object.fromEntries(prompts.map((p) => [p, []]));
	for (const w of words) {
		const prefix = w.replace(/_?words$/, "").replace(/^words_?/, "");
		const match = [`${prefix}_prompt`, `${prefix}_prompts`, "prompt", prompts[0]].find((p) => p in pairs);
		pairs[match].push(w);
	}
	return pairs;
}

async function tokenize(prompt, words) {
	const resp = await api.fetchApi(ROUTE, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ prompt, words }),
	});
	const data = await resp.json().catch(() => ({}));
	if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
	return data;
}

function renderSection(name, linked, data, wordsNames) {
	const chosen = new Map(); // position -> colour
	data.entries.forEach((e, i) => e.positions.forEach((p) => chosen.set(p, PALETTE[i % PALETTE.length])));
	const n = data.chunks.length;
	const used = data.chunks.reduce((s, c) => s + c.length, 0);
	const sec = el("div", { class: "am-section", "data-prompt": name, "data-missing": data.missing.join(", ") });
	sec.append(el("div", {
		class: "am-head",
		text: `${name}${linked ? " (linked: shows the widget value)" : ""}: ${data.words.length} words, ` +
			`${used} tokens in ${n} chunk${n === 1 ? "" : "s"} of ${data.chunk_length}`,
	}));
	data.chunks.forEach((chunk, c) => {
		const row = el("div", { class: "am-chunk", "data-chunk": String(c), title: `chunk ${c + 1}: positions ${c * data.chunk_length}-${(c + 1) * data.chunk_length - 1}` });
		for (const t of chunk) {
			const special = t.token.startsWith("<");
			const chip = el("span", { class: "am-tok" + (special ? " am-special" : ""), "data-pos": String(t.pos), title: `position ${t.pos}` },
				special ? t.token.slice(1, -1) : t.token, el("sub", { text: String(t.pos) }));
			if (chosen.has(t.pos)) {
				chip.classList.add("am-chosen");
				chip.style.background = chosen.get(t.pos);
			}
			row.append(chip);
		}
		sec.append(row);
	});
	if (data.entries.length) {
		const words = el("div", { class: "am-words" }, `${wordsNames.join(", ")}: `);
		data.entries.forEach((e, i) => {
			const s = el("span", { "data-entry": e.entry, text: `${e.entry} → ${e.found ? e.positions.join(" ") : "not found"}` });
			s.style.color = e.found ? PALETTE[i % PALETTE.length] : "#ff7b7b";
			if (i) words.append(" · ");
			words.append(s);
		});
		sec.append(words);
	}
	if (data.missing.length) {
		sec.append(el("div", { class: "am-missing", text: `not in the prompt: ${data.missing.join(", ")}` }));
	}
	return sec;
}

function attach(node, pairs) {
	ensureCss();
	const box = el("div", { class: "am-view am-tokens", "data-status": "pending" });
	let height = 60;
	const widget = addViewWidget(node, WIDGET, box, () => height);
	let seq = 0;

	const values = () => Object.entries(pairs).map(([p, ws]) => {
		const pw = findWidget(node, p);
		const linked = pw?.type === "converted-widget" || !!node.inputs?.find((i) => i.name === p && i.link != null);
		return { name: p, prompt: String(pw?.value ?? ""), linked, wordsNames: ws, words: ws.map((w) => String(findWidget(node, w)?.value ?? "")).join(", ") };
	});

	const update = async () => {
		const my = ++seq;
		const vals = values();
		box.dataset.status = "pending";
		let sections;
		try {
			const answers = await Promise.all(vals.map((v) => tokenize(v.prompt, v.words)));
			if (my !== seq) return;
			sections = vals.map((v, i) => renderSection(v.name, v.linked, answers[i], v.wordsNames));
			const missing = answers.flatMap((a) => a.missing);
			box.dataset.status = missing.length ? "missing" : "ok";
			box.dataset.missing = missing.join(", ");
			node.attentionMotionTokens = answers; // for other extensions and tests
		} catch (e) {
			if (my !== seq) return;
			sections = [el("div", { class: "am-error", text: `token view unavailable: ${e.message}` })];
			box.dataset.status = "error";
		}
		box.replaceChildren(...sections);
		height = Math.min(MAX_HEIGHT, Math.max(40, box.scrollHeight + 24));
		fitNode(node);
	};

	let timer;
	watchNode(node, () => JSON.stringify(values()), () => {
		clearTimeout(timer);
		timer = setTimeout(update, 200);
	});
	return widget;
}

/** Add the token view to a node type of this pack that takes a prompt and words. */
export function addTokenView(nodeType, nodeData) {
	if (!isPackNode(nodeData)) return false;
	const pairs = tokenInputs(nodeData);
	if (!pairs) return false;
	const onNodeCreated = nodeType.prototype.onNodeCreated;
	nodeType.prototype.onNodeCreated = function () {
		const r = onNodeCreated?.apply(this, arguments);
		try {
			attach(this, pairs);
		} catch (e) {
			console.warn("[attention_motion] token view not added:", e);
		}
		return r;
	};
	return true;
}
