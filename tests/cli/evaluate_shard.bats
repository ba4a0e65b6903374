#!/usr/bin/env bats
# evaluate classify --predictions per shard: the input split into 1, 3 and 8 shards (shard
# split), each scored alone, the predictions merged (shard merge) — byte for byte the unsharded
# run's predictions. Holds because a record's scores depend on that record alone (its choices
# run through the KV cache on top of its prompt, not batched with other records).
load helpers

TINY=$KILN_ROOT/build/tests/tools/eval_tiny_model

@test "evaluate classify --predictions: 1, 3 and 8 shards merged equal the unsharded run" {
    "$TINY" m 1
    # prompts of many lengths (some cut to fit the context), unknown fields, a record without
    # an id (shard places it by position)
    awk 'BEGIN { srand(5); n = split("win free prize now cheap pills meeting moved lunch " \
            "tomorrow call me the report is ready click here offer ends", w, " ")
        for (i = 1; i <= 40; i++) {
            t = ""; k = 2 + int(rand() * 14)
            for (j = 0; j < k; j++) t = t (j ? " " : "") w[1 + int(rand() * n)]
            lab = rand() < 0.4 ? "spam" : "ham"
            if (i % 13 == 0) printf "{\"text\":\"%s\",\"label\":\"%s\"}\n", t, lab
            else printf "{\"id\":\"r%d\",\"meta\":{\"n\":%d},\"text\":\"%s\",\"label\":\"%s\"}\n", i, i, t, lab
        } }' > in.jsonl
    run evaluate classify --model m --choices spam,ham --plain --predictions ref.jsonl -o r.jsonl in.jsonl
    expect_status 0
    [ "$(wc -l < ref.jsonl)" -eq 40 ]
    # the input record, then the prediction fields
    head -n 1 ref.jsonl | grep -q '^{"id":"r1","meta":{"n":1},"text":"[a-z ]*","label":"[a-z]*","prediction":"[a-z]*","prediction_norm":"[a-z]*","logprobs":{"spam":-[0-9.e-]*,"ham":-[0-9.e-]*},"probs":{"spam":[0-9.e-]*,"ham":[0-9.e-]*}}$'
    sed -n 13p ref.jsonl | grep -q '^{"text":'
    # the same log-probabilities as the results rows
    [ "$(grep -o '"logprobs":{[^}]*}' ref.jsonl)" = "$(head -n 40 r.jsonl | grep -o '"logprobs":{[^}]*}')" ]
    for n in 1 3 8; do
        rm -rf parts && mkdir parts
        shard split -q -n "$n" -o 'parts/in-{}.jsonl.zst' in.jsonl
        for ((i = 0; i < n; i++)); do
            evaluate classify --model m --choices spam,ham --threads $((i % 2 + 1)) -q \
                --predictions "parts/out-$i.jsonl.zst" -o /dev/null "parts/in-$i.jsonl.zst"
        done
        shard merge --plain -o merged.jsonl parts/out-*.jsonl.zst
        cmp merged.jsonl ref.jsonl
    done
    no_tmp_left
}

@test "evaluate classify --predictions: nothing written when the run fails" {
    "$TINY" m 1
    printf '{"id":"a","text":"hello","label":"spam"}\n{"id":"b","text":"bye"}\n' > bad.jsonl
    run evaluate classify --model m --choices spam,ham --predictions p.jsonl.zst -o r.jsonl bad.jsonl
    expect_status 1
    expect_output_contains "no 'label' field"
    [ ! -e p.jsonl.zst ] && [ ! -e r.jsonl ]
    # the results cannot be written (nor the database): the predictions go too
    printf '{"id":"a","text":"hello","label":"spam"}\n{"id":"b","text":"bye","label":"ham"}\n' > ok.jsonl
    run evaluate classify --model m --choices spam,ham --predictions p.jsonl.zst -o /nonexistent/r.jsonl ok.jsonl
    expect_status 1
    [ ! -e p.jsonl.zst ]
    run evaluate classify --model m --choices spam,ham --predictions p.jsonl.zst --db /nonexistent/x.db -o r.jsonl ok.jsonl
    expect_status 1
    [ ! -e p.jsonl.zst ] && [ ! -e r.jsonl ]
    no_tmp_left
}
