// SPDX-License-Identifier: MIT
// logits_compare.mjs: compares two log-probability dumps (the JSON of llama_logits.mjs and
// gguf_tiny_llama logits): max absolute difference over all positions and tokens, and the
// share of positions where both pick the same top-1 token. Prints one JSON line; with
// --max-diff X and/or --min-top1 Y, exits 1 when a bound is violated.
//
//   node tests/tools/logits_compare.mjs [--max-diff X] [--min-top1 Y] A.json B.json
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
let maxDiff = Infinity, minTop1 = 0;
while (args[0]?.startsWith("--")) {
    const [opt, val] = args.splice(0, 2);
    if (opt === "--max-diff") maxDiff = Number(val);
    else if (opt === "--min-top1") minTop1 = Number(val);
    else { process.stderr.write(`logits_compare: unknown option ${opt}\n`); process.exit(2); }
}
if (args.length !== 2) {
    process.stderr.write("usage: logits_compare.mjs [--max-diff X] [--min-top1 Y] A.json B.json\n");
    process.exit(2);
}
const [a, b] = args.map((f) => JSON.parse(readFileSync(f, "utf8")));
if (a.logprobs.length !== b.logprobs.length || a.n_vocab !== b.n_vocab) {
    process.stderr.write("logits_compare: shapes differ\n");
    process.exit(1);
}
let worst = 0, where = null, agree = 0;
const argmax = (row) => row.reduce((best, v, i) => (v !== null && v > row[best] ? i : best), 0);
for (let p = 0; p < a.logprobs.length; p++) {
    const x = a.logprobs[p], y = b.logprobs[p];
    for (let v = 0; v < x.length; v++) {
        // null: a probability that underflowed to 0 in float; only the other side's value says
        // whether that matters (below e^-80 it does not).
        if (x[v] === null || y[v] === null) {
            const other = x[v] === null ? y[v] : x[v];
            if (other !== null && other > -80) { worst = Infinity; where = [p, v]; }
            continue;
        }
        const d = Math.abs(x[v] - y[v]);
        if (d > worst) { worst = d; where = [p, v]; }
    }
    agree += argmax(x) === argmax(y);
}
const top1 = agree / a.logprobs.length;
console.log(JSON.stringify({ positions: a.logprobs.length, n_vocab: a.n_vocab,
    max_abs_diff: worst, at: where, top1_agree: top1 }));
process.exit(worst <= maxDiff && top1 >= minTop1 ? 0 : 1);
