// SPDX-License-Identifier: MIT
// llama_pp.mjs: llama.cpp's prompt-processing throughput (npm node-llama-cpp 3.21.1, CPU) on a
// GGUF — the baseline of bench_evaluate.sh. Evaluates N prompts of T tokens each (ids from a
// fixed LCG below the vocabulary size), one ubatch of T per prompt, clearing the KV cache in
// between, on THREADS threads; prints the tokens/s of each prompt and their median as JSON.
// The model load and a warm-up prompt are not timed.
//
//   node tests/bench/llama_pp.mjs MODEL.gguf T N THREADS
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nlcDir = process.env.KILN_NLC_DIR || join(root, "build/cache/nlc");
const entry = join(nlcDir, "node_modules/node-llama-cpp/dist/index.js");
const [modelArg, tArg, nArg, thArg] = process.argv.slice(2);
const T = Number(tArg), N = Number(nArg), threads = Number(thArg);
if (!modelArg || !(T > 0) || !(N > 0) || !(threads > 0)) {
    process.stderr.write("usage: llama_pp.mjs MODEL.gguf T N THREADS\n");
    process.exit(2);
}
if (!existsSync(entry)) {
    process.stderr.write(`llama_pp: node-llama-cpp not installed in ${nlcDir}\n`);
    process.exit(77);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error,
    progressLogs: false });
const model = await llama.loadModel({ modelPath: resolve(modelArg), gpuLayers: 0 });
const nVocab = model.fileInfo.metadata.llama.vocab_size;
const context = await model.createContext({ contextSize: T, batchSize: T, threads,
    flashAttention: false });
const seq = context.getSequence();
let s = 12345;
const prompt = () => Array.from({ length: T }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return 1 + (s % (nVocab - 1));
});
await seq.evaluateWithoutGeneratingNewTokens(prompt()); // warm-up
await seq.clearHistory();
const rates = [];
for (let i = 0; i < N; i++) {
    const ids = prompt();
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(T / secs);
    await seq.clearHistory();
}
const sorted = [...rates].sort((a, b) => a - b);
const mid = sorted.length >> 1;
const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
process.stdout.write(JSON.stringify({ tokens: T, prompts: N, threads, tokens_per_s: median,
    each: rates }) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
