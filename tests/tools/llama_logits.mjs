// SPDX-License-Identifier: MIT
// llama_logits.mjs: runs llama.cpp (through the npm package node-llama-cpp 3.21.1, CPU build)
// on a GGUF file and prints, as JSON, the next-token log-probabilities at every position of
// the given token ids — or, with --generate N, the N greedily generated token ids.
//
//   node tests/tools/llama_logits.mjs MODEL.gguf ID...
//       {"n_vocab":V,"tokens":[...],"logprobs":[[V numbers], ...one row per position]}
//   node tests/tools/llama_logits.mjs --generate N MODEL.gguf ID...
//       {"n_vocab":V,"tokens":[...],"generated":[N ids]}
//   node tests/tools/llama_logits.mjs --tokenize MODEL.gguf TEXT
//       {"tokens":[ids of TEXT by llama.cpp's tokenizer, special tokens as text]}
//
// node-llama-cpp is looked up in $KILN_NLC_DIR (default: build/cache/nlc under the repo root),
// installed there by tests/tools/nlc_install.sh; exit status 77 when it is not installed, so
// tests can skip with a clear message.
//
// llama.cpp does not hand raw logits to JavaScript: node-llama-cpp's sampler returns the
// softmax of the raw logits (greedy chain: no temperature, penalties or top-k applied), which
// we print as log-probabilities (natural log). Logits are log-probabilities plus a per-position
// constant, so comparisons should be made on log-softmax.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nlcDir = process.env.KILN_NLC_DIR || join(root, "build/cache/nlc");
const entry = join(nlcDir, "node_modules/node-llama-cpp/dist/index.js");

function usage(msg) {
    if (msg) process.stderr.write(`llama_logits: ${msg}\n`);
    process.stderr.write("usage: llama_logits.mjs [--generate N] MODEL.gguf ID...\n");
    process.exit(2);
}

const args = process.argv.slice(2);
let generate = 0, tokenize = false;
if (args[0] === "--tokenize") {
    tokenize = true;
    args.shift();
}
if (args[0] === "--generate") {
    generate = Number(args[1]);
    if (!Number.isInteger(generate) || generate < 1) usage("--generate needs a positive count");
    args.splice(0, 2);
}
if (args.length < 2) usage();
const modelPath = resolve(args[0]);
const ids = tokenize ? [] : args.slice(1).map(Number);
if (ids.some((t) => !Number.isInteger(t) || t < 0)) usage("token ids must be integers >= 0");
if (!existsSync(modelPath)) usage(`${modelPath}: no such file`);
if (!existsSync(entry)) {
    process.stderr.write(`llama_logits: node-llama-cpp not installed in ${nlcDir} ` +
        "(run tests/tools/nlc_install.sh)\n");
    process.exit(77);
}

const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error,
    progressLogs: false });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
if (tokenize) {
    process.stdout.write(JSON.stringify({ tokens: Array.from(model.tokenize(args[1], false)) }) + "\n");
    await model.dispose();
    await llama.dispose();
    process.exit(0);
}
const meta = model.fileInfo?.metadata;
const nVocab = meta?.[meta?.general?.architecture]?.vocab_size ??
    meta?.tokenizer?.ggml?.tokens?.length;
if (nVocab) for (const t of ids) if (t >= nVocab) usage(`token id ${t} >= vocabulary size ${nVocab}`);
// An F32 KV cache and no flash attention, so that F32 models can be compared to 1e-4.
const context = await model.createContext({ contextSize: Math.max(ids.length + generate + 8, 16),
    batchSize: Math.max(ids.length, 16), threads: 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
const seq = context.getSequence();
const out = { n_vocab: nVocab, tokens: ids };

if (generate) {
    const gen = [];
    for await (const tok of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
        gen.push(tok);
        if (gen.length >= generate) break;
    }
    out.generated = gen;
} else {
    const input = ids.map((t) => [t, { generateNext: { probabilities: true } }]);
    const res = await seq.controlledEvaluate(input);
    out.logprobs = ids.map((_, i) => {
        const probs = res[i]?.next?.probabilities;
        if (!probs) throw new Error(`no probabilities at position ${i}`);
        const row = new Array(nVocab).fill(null);
        for (const [tok, p] of probs) row[tok] = p > 0 ? Math.log(p) : null;
        return row;
    });
}
process.stdout.write(JSON.stringify(out) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
