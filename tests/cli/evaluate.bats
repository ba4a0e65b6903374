#!/usr/bin/env bats
# evaluate(1): classification, language modelling, generation, import, compare; determinism;
# bad input (model/tokenizer mismatch, untokenizable choices, missing gold labels, unwritable
# or locked databases) fails cleanly with nothing half-written.
load helpers

E=$DATA/evaluate
TINY=$KILN_ROOT/build/tests/tools/eval_tiny_model

@test "evaluate classify: rows, summary, byte-identical reruns for any thread count" {
    "$TINY" m 1
    run evaluate classify --model m --choices spam,ham -o r1.jsonl "$E/sms.jsonl"
    expect_status 0
    expect_output_contains "acc "
    [ "$(wc -l < r1.jsonl)" -eq 9 ]
    head -n 1 r1.jsonl | grep -q '^{"id":"s1","gold":"spam","prediction":"[a-z]*",'
    tail -n 1 r1.jsonl | grep -q '^{"summary":{"task":"classify","n":8,"choices":\["spam","ham"\],"acc":'
    tail -n 1 r1.jsonl | grep -q '"majority_class":"ham"'
    tail -n 1 r1.jsonl | grep -q '"confusion":{"labels":\["spam","ham"\],"matrix":\[\['
    tail -n 1 r1.jsonl | grep -q '"stderr":{"acc":'
    run evaluate classify --model m --choices spam,ham --threads 1 -o r2.jsonl "$E/sms.jsonl"
    expect_status 0
    cmp r1.jsonl r2.jsonl
    # every label seen, sorted, when --choices is absent
    run evaluate classify --model m -o r3.jsonl "$E/sms.jsonl"
    expect_status 0
    tail -n 1 r3.jsonl | grep -q '"choices":\["ham","spam"\]'
    no_tmp_left
}

@test "evaluate classify: probabilities sum to one and the prediction has the best log-prob" {
    "$TINY" m 3
    run evaluate classify --model m -o r.jsonl "$E/sms.jsonl"
    expect_status 0
    head -n 8 r.jsonl | while read -r line; do
        lh=$(sed 's/.*"logprobs":{"ham":\([^,]*\),"spam":\([^}]*\)}.*/\1/' <<< "$line")
        ls=$(sed 's/.*"logprobs":{"ham":\([^,]*\),"spam":\([^}]*\)}.*/\2/' <<< "$line")
        ph=$(sed 's/.*"probs":{"ham":\([^,]*\),"spam":\([^}]*\)}.*/\1/' <<< "$line")
        ps=$(sed 's/.*"probs":{"ham":\([^,]*\),"spam":\([^}]*\)}.*/\2/' <<< "$line")
        want=$(awk -v a="$lh" -v b="$ls" 'BEGIN { print (a >= b) ? "ham" : "spam" }')
        grep -q "\"prediction\":\"$want\"" <<< "$line"
        awk -v a="$ph" -v b="$ps" 'BEGIN { exit !(a + b > 0.999999 && a + b < 1.000001) }'
    done
}

@test "evaluate classify --db: one run with results, stderr and examples" {
    "$TINY" m 1
    run evaluate classify --model m --db x.db --run-name first -o r.jsonl "$E/sms.jsonl"
    expect_status 0
    [ "$(sqlite3 x.db "select status from runs where name='first'")" = ok ]
    [ "$(sqlite3 x.db 'select count(*) from examples')" -eq 8 ]
    [ "$(sqlite3 x.db "select count(*) from results where metric='macro_f1' and stderr is not null")" -eq 1 ]
    sqlite3 x.db "select value from params where key='summary'" | grep -q '"confusion"'
}

@test "evaluate classify: a record without the gold label fails with its line, nothing written" {
    "$TINY" m 1
    printf '{"id":"a","text":"x","label":"spam"}\n{"id":"b","text":"y"}\n' > bad.jsonl
    run evaluate classify --model m --choices spam,ham --db x.db -o r.jsonl bad.jsonl
    expect_status 1
    expect_output_contains "bad.jsonl:2: record has no 'label' field"
    [ ! -e r.jsonl ]
    [ ! -e x.db ] || [ "$(sqlite3 x.db 'select count(*) from runs')" -eq 0 ]
    no_tmp_left
}

@test "evaluate classify: a gold label outside --choices is an error" {
    "$TINY" m 1
    run evaluate classify --model m --choices spam,junk -o r.jsonl "$E/sms.jsonl"
    expect_status 1
    expect_output_contains "label 'ham' is not one of --choices"
    [ ! -e r.jsonl ]
}

@test "evaluate classify: a choice that cannot be tokenized is an error" {
    "$TINY" m 1
    printf '{"text":"x","label":""}\n{"text":"y","label":"ham"}\n' > d.jsonl
    run evaluate classify --model m --completion '{label}' -o r.jsonl d.jsonl
    expect_status 1
    expect_output_contains "cannot be tokenized"
    [ ! -e r.jsonl ]
}

@test "evaluate: a model and tokenizer that do not match is an error" {
    "$TINY" m 1 -20
    run evaluate classify --model m -o r.jsonl "$E/sms.jsonl"
    expect_status 1
    expect_output_contains "model and tokenizer do not match"
    [ ! -e r.jsonl ]
    # token ids beyond the model's vocabulary in tokenized input
    "$TINY" ok 1
    printf '{"input_ids":[1,2,99999]}\n' > ids.jsonl
    run evaluate lm --model ok -o l.jsonl ids.jsonl
    expect_status 1
    expect_output_contains "ids.jsonl:1: input_ids[2] is not a token id of the model"
    [ ! -e l.jsonl ]
}

@test "evaluate: an unwritable database fails before any output" {
    "$TINY" m 1
    run evaluate classify --model m --db /nonexistent/dir/x.db -o r.jsonl "$E/sms.jsonl"
    expect_status 1
    expect_output_contains "x.db"
    [ ! -e r.jsonl ]
    no_tmp_left
}

@test "evaluate: a locked database fails after the busy timeout, nothing half-written" {
    "$TINY" m 1
    evaluate classify --model m --db x.db -q -o /dev/null "$E/sms.jsonl"
    # hold the write lock for a few seconds
    (printf 'BEGIN IMMEDIATE;\nINSERT INTO params VALUES(1,"lock","x");\n'; sleep 4; printf 'ROLLBACK;\n') \
        | sqlite3 x.db &
    sleep 1
    run evaluate classify --model m --db x.db --busy-timeout 0.2 -o r.jsonl "$E/sms.jsonl"
    expect_status 1
    expect_output_contains "locked"
    [ ! -e r.jsonl ]
    wait
    [ "$(sqlite3 x.db 'select count(*) from runs')" -eq 1 ]
    no_tmp_left
}

@test "evaluate lm: loss, perplexity = exp(loss), bits per byte; windows cover long documents" {
    "$TINY" m 1
    run evaluate lm --model m -o l.jsonl "$E/docs.jsonl"
    expect_status 0
    tail -n 1 l.jsonl | grep -q '"task":"lm-rolling"'
    loss=$(tail -n 1 l.jsonl | sed 's/.*"bytes":[0-9]*,"loss":\([^,]*\),.*/\1/')
    ppl=$(tail -n 1 l.jsonl | sed 's/.*"bytes":[0-9]*,"loss":[^,]*,"perplexity":\([^,]*\),.*/\1/')
    awk -v l="$loss" -v p="$ppl" 'BEGIN { exit !(l > 0 && (exp(l) - p)^2 < 1e-12 * p * p) }'
    # short windows: the same tokens are scored, each with less context
    run evaluate lm --model m --seq-len 4 -o l4.jsonl "$E/docs.jsonl"
    expect_status 0
    t1=$(tail -n 1 l.jsonl | sed 's/.*"tokens":\([0-9]*\),.*/\1/')
    t4=$(tail -n 1 l4.jsonl | sed 's/.*"tokens":\([0-9]*\),.*/\1/')
    [ "$t1" -eq "$t4" ]
    ! cmp -s l.jsonl l4.jsonl
    run evaluate lm --model m --threads 1 -o l2.jsonl "$E/docs.jsonl"
    cmp l.jsonl l2.jsonl
}

@test "evaluate lm --packed equals the trainer's validation loss on the same data" {
    [ -x "$KILN_BIN/train" ] || skip "train is not built on this branch yet"
    [ -x "$KILN_BIN/tokenize" ] || skip "tokenize is not built on this branch yet"
    "$TINY" m 1
    tokenize encode --tokenizer m/tokenizer.json --plain -o ids.jsonl "$E/docs.jsonl"
    train --init m --tokenizer m/tokenizer.json --seq-len 8 --batch 2 --steps 2 --lr 1e-3 \
        --valid ids.jsonl --valid-every 2 --log log.jsonl -o out ids.jsonl
    want=$(grep valid_loss log.jsonl | tail -n 1 | sed 's/.*"valid_loss":\([^,}]*\).*/\1/')
    run evaluate lm --model out --packed --seq-len 8 -o l.jsonl ids.jsonl
    expect_status 0
    got=$(tail -n 1 l.jsonl | sed 's/.*"bytes":[0-9]*,"loss":\([^,]*\),.*/\1/')
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }'
}

@test "evaluate generate: greedy and seeded sampling are reproducible; stop sequences cut" {
    "$TINY" m 1
    run evaluate generate --model m --max-tokens 5 -o g1.jsonl "$E/gen.jsonl"
    expect_status 0
    tail -n 1 g1.jsonl | grep -q '"task":"generate","n":2,"exact_match":'
    evaluate generate --model m --max-tokens 5 -q -o g2.jsonl "$E/gen.jsonl"
    cmp g1.jsonl g2.jsonl
    evaluate generate --model m --max-tokens 5 --temperature 1 --top-k 20 --top-p 0.9 --seed 7 -q -o s1.jsonl "$E/gen.jsonl"
    evaluate generate --model m --max-tokens 5 --temperature 1 --top-k 20 --top-p 0.9 --seed 7 --threads 1 -q -o s2.jsonl "$E/gen.jsonl"
    cmp s1.jsonl s2.jsonl
    head -n 1 g1.jsonl | grep -q '"tokens":5,"stop":null'
}

@test "evaluate import: results, stage stats and a trainer log in one run" {
    "$TINY" m 1
    evaluate classify --model m -q -o r.jsonl "$E/sms.jsonl"
    printf '{"stage":"filter","version":"0.1.0","records_in":10,"bytes_in":100,"records_out":8,"bytes_out":80,"seconds":0.1}\n' > st.json
    printf '{"step":1,"loss":3.5,"lr":0.001}\n{"step":2,"loss":3.1,"lr":0.001}\n{"step":2,"valid_loss":3.2,"valid_ppl":24.5}\n' > log.jsonl
    run evaluate import --db x.db --run-name nightly --pipeline default --artifact r.jsonl r.jsonl st.json log.jsonl
    expect_status 0
    [ "$(sqlite3 x.db "select kind||' '||name||' '||status from runs")" = "pipeline nightly ok" ]
    [ "$(sqlite3 x.db "select count(*) from metrics where key='loss'")" -eq 2 ]
    [ "$(sqlite3 x.db "select records_out from stage_stats where stage='filter'")" -eq 8 ]
    [ "$(sqlite3 x.db 'select count(*) from examples')" -eq 8 ]
    [ "$(sqlite3 x.db 'select sha256 from artifacts')" = "$(sha256sum r.jsonl | cut -d' ' -f1)" ]
    # a bad file anywhere: nothing is imported
    printf '{"step":"x"}\n' > badlog.jsonl
    run evaluate import --db x.db --run-name second r.jsonl badlog.jsonl
    expect_status 1
    expect_output_contains "badlog.jsonl:1:"
    [ "$(sqlite3 x.db 'select count(*) from runs')" -eq 1 ]
    run evaluate import --db x.db notes.txt
    expect_status 1
    # classify and lm results of one model in one run: clashing names get the task prefix
    evaluate lm --model m -q -o l.jsonl "$E/docs.jsonl"
    run evaluate import --db x.db --run-name both r.jsonl l.jsonl
    expect_status 0
    [ "$(sqlite3 x.db "select count(*) from results r join runs u on u.id = r.run_id where u.name = 'both' and metric in ('n', 'lm-rolling/n', 'loss', 'macro_f1')")" -eq 4 ]
}

@test "evaluate compare: diff with standard errors; the gate exits 3 on a regression" {
    mk() { printf '{"id":"a","gold":"x","prediction":"x","correct":true}\n{"summary":{"n":100,"acc":%s,"macro_f1":%s,"stderr":{"acc":0.02,"macro_f1":0.03}}}\n' "$1" "$2" > "$3"; }
    mk 0.90 0.80 old.jsonl
    mk 0.89 0.78 same.jsonl
    mk 0.70 0.60 worse.jsonl
    run evaluate compare --gate macro_f1 --k 2 old.jsonl same.jsonl
    expect_status 0
    expect_output_contains "macro_f1"
    expect_output_contains "<- gate"
    run evaluate compare --gate macro_f1 --k 2 old.jsonl worse.jsonl
    expect_status 3
    expect_output_contains "regressed"
    run evaluate compare --gate nosuch old.jsonl worse.jsonl
    expect_status 1
    # runs by name from the database
    evaluate import --db x.db --run-name A old.jsonl
    evaluate import --db x.db --run-name B worse.jsonl
    run evaluate compare --db x.db --gate acc A B
    expect_status 3
}

@test "evaluate: usage errors exit 2" {
    run evaluate
    expect_status 2
    run evaluate frobnicate
    expect_status 2
    run evaluate classify "$E/sms.jsonl"
    expect_status 2
    expect_output_contains "--model"
    run evaluate compare onlyone.jsonl
    expect_status 2
}

@test "evaluate report: the newest generate run's generations with prompt, target and exact match" {
    "$TINY" m 1
    evaluate report --db x.db --md none.md -o none.html 2>/dev/null || true
    evaluate generate --model m --db x.db --run-name old --max-tokens 2 -q -o /dev/null "$E/gen.jsonl"
    evaluate generate --model m --db x.db --run-name new --max-tokens 3 --stop zz -q -o g.jsonl "$E/gen.jsonl"
    head -n 1 g.jsonl | grep -q '^{"id":"g1","prompt":"Win a free","gold":" prize","prediction":'
    evaluate classify --model m --db x.db --run-name C -q -o /dev/null "$E/sms.jsonl"
    run evaluate report --db x.db -o r.html --md r.md
    expect_status 0
    grep -q '^## Generations' r.md
    grep -q '^Run 2 \*\*new\*\*: exact match 0 ± 0\.$' r.md
    grep -q '^| g1 | Win a free | .* |  prize | no | 3 |  |$' r.md
    grep -q '^| g2 | Meeting moved to | ' r.md
    grep -q '<h2>Generations</h2>' r.html
    grep -q '<td class="l">Meeting moved to</td>' r.html
    # no generate run, no section
    evaluate classify --model m --db y.db -q -o /dev/null "$E/sms.jsonl"
    evaluate report --db y.db -o y.html --md y.md
    ! grep -q 'Generations' y.md y.html
}

@test "evaluate report: self-contained HTML opens in headless Chromium without console errors; charts drawn" {
    if ! command -v chromium > /dev/null; then
        echo "# SKIPPED LOUDLY: chromium is not installed (apt-get install chromium)" >&3
        skip "chromium is not installed"
    fi
    "$TINY" m 1
    evaluate generate --model m --db x.db --run-name G --max-tokens 4 -q -o /dev/null "$E/gen.jsonl"
    evaluate classify --model m --db x.db --run-name A -q -o /dev/null "$E/sms.jsonl"
    evaluate classify --model m --db x.db --run-name B --choices ham,spam -q -o /dev/null "$E/sms.jsonl"
    printf '{"stage":"filter","version":"0.1.0","records_in":10,"bytes_in":100,"records_out":8,"bytes_out":80,"seconds":0.1}\n' > st.json
    printf '{"step":1,"loss":3.5}\n{"step":2,"loss":3.1}\n{"step":2,"valid_loss":3.2}\n' > log.jsonl
    evaluate import --db x.db --pipeline p -q st.json log.jsonl
    run evaluate report --db x.db -o report.html --md report.md
    expect_status 0
    grep -q '<svg' report.html
    ! grep -Eq 'https?://|<script|<link|src=' report.html
    grep -q '^## Data funnel' report.md
    grep -q '^| ham | ' report.md
    grep -q '^## Generations' report.md
    # the same database renders the same bytes
    evaluate report --db x.db -o again.html
    cmp report.html again.html
    printf '<!DOCTYPE html><html><body></body></html>\n' > blank.html
    shoot() {
        local dir
        dir=$(mktemp -d "$BATS_TEST_TMPDIR/chrome.XXXXXX")
        timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --user-data-dir="$dir" --enable-logging=stderr --v=0 --window-size=1000,2000 \
            --screenshot="$2" "file://$PWD/$1" 2> "$2.log"
    }
    shoot report.html report.png
    shoot blank.html blank.png
    [ -s report.png ] && [ -s blank.png ]
    if grep -E 'CONSOLE|Uncaught|Failed to load' report.png.log; then
        echo "console errors above" >&2
        return 1
    fi
    # a page of charts compresses far worse than a blank page of the same size
    big=$(stat -c %s report.png) small=$(stat -c %s blank.png)
    [ "$big" -gt $((small * 5)) ]
    run evaluate report --db missing.db -o r.html
    expect_status 1
    [ ! -e r.html ]
}

@test "evaluate: an F32 GGUF export scores byte-identically to its checkpoint; Q8_0 close" {
    "$TINY" m 1
    quantize-export gguf -q --model m --type f32 -o m.gguf
    quantize-export gguf -q --model m --type q8_0 -o q.gguf
    evaluate classify --model m -q -o c.jsonl "$E/sms.jsonl"
    run evaluate classify --model m.gguf --tokenizer m/tokenizer.json -o g.jsonl "$E/sms.jsonl"
    expect_status 0
    cmp c.jsonl g.jsonl
    # no tokenizer beside the GGUF and none given
    run evaluate classify --model q.gguf -o x.jsonl "$E/sms.jsonl"
    expect_status 1
    expect_output_contains "no tokenizer"
    run evaluate compare --gate acc --k 2 c.jsonl <(evaluate classify --model q.gguf --tokenizer m/tokenizer.json -q -o - "$E/sms.jsonl")
    expect_status 0
}
