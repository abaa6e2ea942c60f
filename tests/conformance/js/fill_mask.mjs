// @huggingface/inference fillMask against a running maskserve (the Hugging Face Inference API route).
//
//   node fill_mask.mjs '{"http": "http://127.0.0.1:8080", "model": "bert", "text": "...", "hf_top_k": 2,
//                        "targets": ["paris", "london"]}'
//
// Prints one JSON document on stdout: {"versions": {...}, "cases": {name: {"ok": true, "value": [...]} |
// {"ok": false, "error": "..."}}}. Logging goes to stderr so stdout stays parseable.
import { createRequire } from "node:module";
import { InferenceClient, fillMask, setLogger } from "@huggingface/inference";

const toStderr = (...args) => console.error(...args);
setLogger({ debug: toStderr, info: toStderr, log: toStderr, warn: toStderr, error: toStderr });

const spec = JSON.parse(process.argv[2]);
const byModel = `${spec.http}/models/${spec.model}`;
const parameters = { top_k: spec.hf_top_k, targets: spec.targets };

const cases = {
  // The client tied to an endpoint (InferenceClient.endpoint), with top_k and targets.
  endpoint_model_route: () => new InferenceClient().endpoint(byModel).fillMask({ inputs: spec.text, parameters }),
  // endpointUrl as a default option, the server root (POST /), server-side defaults (top_k 5).
  endpoint_root_route: () => new InferenceClient("", { endpointUrl: spec.http }).fillMask({ inputs: spec.text }),
  // The standalone task function with endpointUrl in its arguments.
  function_model_route: () => fillMask({ endpointUrl: byModel, inputs: spec.text, parameters }),
};

const results = {};
for (const [name, run] of Object.entries(cases)) {
  try {
    results[name] = { ok: true, value: await run() };
  } catch (error) {
    results[name] = { ok: false, error: `${error?.name}: ${error?.message}`, traceback: String(error?.stack) };
  }
}

const require = createRequire(import.meta.url);
let version = "unknown";
try {
  version = require("@huggingface/inference/package.json").version;
} catch {
  // The package's exports map may hide package.json in other versions; the version is informative only.
}
process.stdout.write(`${JSON.stringify({ versions: { "@huggingface/inference": version, node: process.version }, cases: results })}\n`);
