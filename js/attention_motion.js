// The attention_motion frontend extension: one registration, documented hooks only
// (app.registerExtension + beforeRegisterNodeDef; node callbacks onNodeCreated / onExecuted).
// Every node of this pack (category "attention_motion") that takes a prompt and words gets the
// token view; every one with dx/dy gets the motion path widget; one with a "regions" input gets
// the region box widget; output nodes get file previews.
import { app } from "../../scripts/app.js";
import { addTokenView } from "./token_view.js";
import { addMotionPath } from "./motion_path.js";
import { addRegionBoxes } from "./region_boxes.js";
import { addPreviews } from "./previews.js";

app.registerExtension({
	name: "attention_motion",
	async beforeRegisterNodeDef(nodeType, nodeData) {
		// order matters: the view widgets are appended after the node's own widgets in this order
		addTokenView(nodeType, nodeData);
		addMotionPath(nodeType, nodeData);
		addRegionBoxes(nodeType, nodeData);
		addPreviews(nodeType, nodeData);
	},
});
