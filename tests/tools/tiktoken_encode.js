// SPDX-License-Identifier: MIT
// tiktoken_encode.js: the benchmark baseline — encodes the "text" field of every JSON record in
// a file with the npm tiktoken WASM encoder (special-token text as ordinary text, like
// `tokenize encode`) and prints the record and token counts.
//   node tests/tools/tiktoken_encode.js TIKTOKEN_PACKAGE_DIR ENCODING FILE.jsonl
'use strict';
const fs = require('fs');
const path = require('path');
const { get_encoding } = require(path.resolve(process.argv[2], 'tiktoken.cjs'));
const enc = get_encoding(process.argv[3]);
const lines = fs.readFileSync(process.argv[4], 'utf8').split('\n');
let records = 0, tokens = 0;
for (const line of lines) {
    if (!line) continue;
    tokens += enc.encode(JSON.parse(line).text, [], []).length + 1; // + EOS, as tokenize does
    records++;
}
enc.free();
console.log(`${records} records ${tokens} tokens`);
