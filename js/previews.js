// Previews of this pack's output nodes after a run.
// - Heatmaps / masks (AttentionHeatmaps) and animated WebP/GIF clips (SaveMotionClip) come back as
//   the standard `ui.images` (+ `animated`), which the frontend itself shows on the node.
// - For clips this adds the list of saved files (links), and plays an MP4 in a <video> when the
//   run saved no animated image to show.
import { api } from "../../scripts/api.js";
import { addViewWidget, chainCallback, ensureCss, el, fitNode, isPackNode } from "./am_common.js";

const WIDGET = "attention_motion_files";
// the classic canvas insets a DOM widget by 10 px on each side of the height it asks for
const MARGINS = 20;
const LINKS_H = 20 + MARGINS;
const VIDEO_H = 180 + MARGINS;

const viewUrl = (f) => api.apiURL("/view?" + new URLSearchParams({ filename: f.filename, subfolder: f.subfolder ?? "", type: f.type ?? "output" }));

function showFiles(node, output) {
	ensureCss();
	const clips = output?.clips ?? [];
	if (!clips.length) return;
	let view = node.attentionMotionFiles;
	if (!view) {
		const box = el("div", { class: "am-files" });
		view = { box, height: LINKS_H };
		view.widget = addViewWidget(node, WIDGET, box, () => view.height);
		node.attentionMotionFiles = view;
	}
	// one line whatever the node's width: each name shrinks with an ellipsis (full name as tooltip)
	const links = el("div", { class: "am-links" }, el("span", { text: "saved:" }),
		...clips.map((f) => el("a", { href: viewUrl(f), target: "_blank", text: f.filename, title: f.filename })));
	const shown = (output.images ?? []).length > 0;
	const mp4 = clips.find((f) => /\.mp4$/i.test(f.filename));
	const parts = [links];
	view.height = LINKS_H;
	if (!shown && mp4) {
		const video = el("video", { src: viewUrl(mp4), autoplay: true, loop: true, muted: true, playsInline: true, controls: false });
		video.muted = true;
		parts.push(video);
		view.height = VIDEO_H;
	}
	view.box.replaceChildren(...parts);
	view.box.dataset.files = clips.map((f) => f.filename).join(",");
	fitNode(node);
}

/** Show saved files / MP4 on this pack's output nodes after they ran. */
export function addPreviews(nodeType, nodeData) {
	if (!isPackNode(nodeData) || !nodeData.output_node) return false;
	chainCallback(nodeType, "onExecuted", "preview", (node, output) => showFiles(node, output));
	return true;
}
