// SPDX-License-Identifier: MIT
// tiktoken_fixture.js: makes tests/data/tok/tiktoken_fixture.jsonl, the exact-ids fixture for
// the tokenizer. Each line is {"name","text","gpt2":[ids],"cl100k_base":[ids],"o200k_base":[ids]}
// as the npm `tiktoken` package's WASM encoder (the reference) produces them, with special-token
// text encoded as ordinary text (allowed_special = [], disallowed_special = []).
//
// Run by hand when the corpus below changes (the tests need no node):
//   cd /tmp/x && npm install tiktoken@1.0.22
//   NODE_PATH=/tmp/x/node_modules node tests/tools/tiktoken_fixture.js > tests/data/tok/tiktoken_fixture.jsonl
// The corpus is hand-picked cases plus pseudo-random strings from a fixed-seed generator over a
// pool of characters chosen to hit every branch of the pre-tokenizer regexes.
'use strict';
const { get_encoding } = require('tiktoken');

const cases = [
    ['prose', 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the ' +
        'worst of times; it was the age of wisdom, it was the age of foolishness...\n\nCall me Ishmael.'],
    ['prose_long_words', 'Antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis.'],
    ['c_source', '#include <stdio.h>\n\nint\nmain(int argc, char **argv)\n{\n\tfor (int i = 0; i < argc; i++)\n' +
        '\t\tprintf("%s\\n", argv[i]);\n    return 0; // done\n}\n'],
    ['python_source', 'def f(x):\n    """Doc."""\n    if x >= 10:\n        return x**2  # square\n\n\n    return [y for y in range(x)]\n'],
    ['json', '{"id": "a-1", "text": "hello", "n": [1, 2, 3.5e-7], "ok": true}'],
    ['email', 'From: "Jane Doe" <jane.doe@example.com>\r\nTo: bob@example.org\r\nSubject: Re: [spam] ' +
        'WIN $$$ NOW!!!\r\nDate: Tue, 26 Nov 2024 12:48:27 +0000\r\nContent-Type: text/plain; charset=UTF-8\r\n' +
        'X-Spam-Status: No, score=-2.6 required=5.0\r\n\r\nHi Bob,\r\n\r\n> quoted line\r\n>> deeper\r\n\r\n-- \r\nJane\r\n'],
    ['digits', '0 1 12 123 1234 12345 123456 1234567 3.14159265358979 1,000,000 2024-11-26 +1-555-0100 ' +
        '000000000000000000000 x1y22z333 ٣٤٥ ①②③ ¾'],
    ['whitespace_runs', 'a  b   c    d\t\te \t \tf\n\ng\n \n h\n\n\n   i     '],
    ['trailing_spaces', 'line with trailing spaces   \nanother\t\t\nlast   '],
    ['crlf', 'one\r\ntwo\r\n\r\nthree\r\r\n\n\rfour\r\n'],
    ['only_spaces', '     '],
    ['only_newlines', '\n\n\n'],
    ['mixed_ws_end', 'x \n \t\r\n  '],
    ['emoji', 'I 👍🏽 this! 🇺🇸🇯🇵 family: 👨‍👩‍👧‍👦 ❤️ 😀😃😄 ✨done✨'],
    ['cjk', '我爱北京天安门。日本語のテキストです、カタカナ。한국어 텍스트입니다. 漢字かな混じり文'],
    ['arabic', 'مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣ وتشكيل: مُحَمَّد'],
    ['hebrew_hindi_thai', 'שָׁלוֹם עוֹלָם — नमस्ते दुनिया — สวัสดีชาวโลก'],
    ['combining', 'e\u0301 a\u0308 n\u0303 \u0301start Z\u0334\u0322\u0347a\u0337l\u0336g\u0338o \u0308\u0308 x\u20dd'],
    ['contractions_lower', "I'm sure you're right, we'll see; they've gone, she'd know, it's his, don't."],
    ['contractions_upper', "I'M SURE YOU'RE RIGHT, WE'LL SEE; THEY'VE GONE, SHE'D KNOW, IT'S HIS, DON'T."],
    ['contractions_mixed', "You'Re We'lL It'S 's 'S 'll 'LL 'x ''s '' ' x'ſ AbC'dEf"],
    ['special_looking', 'Text <|endoftext|> more <|fim_prefix|><|fim_middle|><|fim_suffix|> and <|endofprompt|> <|pad|>'],
    ['camel_case', 'XMLHttpRequest getElementById HTMLElement iPhone McDonald ǅemal ÀÉÎõü ΣΑΣ σας ДОМ дом'],
    ['urls_paths', 'https://example.com/a/b//c?q=1&r=%20#frag /usr/local/bin//x\n// comment\n/* c */'],
    ['punct_runs', '!!! ??? ... --- *** ### $$$ ((( ))) «» „“ — – … ¿¡ @@ ^^ ~~ `` ||'],
    ['unicode_spaces', 'a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g\u000bh\u000ci\u1680j\u202fk'],
    ['math_symbols', '∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x|; ∑ᵢ aᵢ ≠ ∞ ± ε'],
    ['greek_cyrillic', 'Η γρήγορη καφέ αλεπού. Съешь же ещё этих мягких французских булок.'],
    ['mixed_scripts', 'abcабвαβγ123١٢٣ x-y_z a.b,c;d:e'],
    ['single_apostrophe', "'"],
    ['empty', ''],
    ['one_space', ' '],
    ['tab_letter', '\tword \tword\t'],
    ['letters_marks_digits', 'a\u0301b1\u0301\u0301 2\u0301 \u0301\u0301x'],
    ['modifier_letters', 'ʰʲʷ ʼn ˈstres ꜱ ǈ ᾈ ᵃᵇᶜ'],
    ['nul_and_controls', 'a\u0000b\u0001c\u007fd\u001be'],
    ['surrogate_region', '\uE000 private \uFFFD replacement \uFEFF bom'],
];

// Pseudo-random strings: a fixed-seed xorshift over a character pool that mixes every class the
// regexes distinguish (upper, lower, modifier, other letters, marks, digits, spaces, CR/LF,
// apostrophes and contraction letters, punctuation, slash, symbols, emoji).
const pool = ['a', 'b', 's', 't', 'l', 'v', 'e', 'r', 'd', 'm', 'A', 'S', 'T', 'L', 'D', 'É', 'ß',
    'ʰ', 'ǅ', '中', 'ア', 'ا', '\u0301', '\u0308', '0', '7', '٣', '½', ' ', ' ', ' ', '  ', '\t', '\n',
    '\r', '\r\n', '\u00a0', '\u3000', "'", "'", '.', ',', '!', '/', '//', '-', '$', '<|', '|>', '😀', '👍🏽', 'ſ', 'K'];
let st = 0x9e3779b9;
function rnd(n) {
    st ^= st << 13; st >>>= 0; st ^= st >>> 17; st ^= st << 5; st >>>= 0;
    return st % n;
}
for (let i = 0; i < 160; i++) {
    const len = 1 + rnd(24);
    let s = '';
    for (let j = 0; j < len; j++) s += pool[rnd(pool.length)];
    cases.push(['random_' + i, s]);
}

const names = ['gpt2', 'cl100k_base', 'o200k_base'];
const encs = names.map((n) => get_encoding(n));
for (const [name, text] of cases) {
    const rec = { name, text };
    names.forEach((n, k) => { rec[n] = Array.from(encs[k].encode(text, [], [])); });
    process.stdout.write(JSON.stringify(rec) + '\n');
}
// One record with special tokens allowed, for the --allow-special policy.
const allowed = 'a<|endoftext|>b <|endofprompt|>';
const rec = { name: 'allow_special', text: allowed };
names.forEach((n, k) => { rec[n] = Array.from(encs[k].encode(allowed, 'all', [])); });
process.stdout.write(JSON.stringify(rec) + '\n');
encs.forEach((e) => e.free());
