// Runs [centre, offset] pairs (JSON on stdin) through the frontend's edge rule (js/motion_math.js
// clampOffset) and prints the kept offsets as JSON. tests/test_edge_rule.py compares them with
// core/shift.clamp_offset. Usage: node tests/js/edge_cases.mjs < cases.json
import { readFileSync } from "node:fs";
import { clampOffset } from "../../js/motion_math.js";

const cases = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(([centre, offset]) => clampOffset(centre, offset))) + "\n");
