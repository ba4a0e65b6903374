# evaluate --adapter: a LoRA adapter trained by `train --method lora` and scored on the fly
# (merged at load) gives the same results as evaluating the merged model, merged two other
# ways — quantize-export hf --adapter (its own merge, in double) and train --merge (common/lora)
# — within float tolerance; and differs from the base model, so the adapter is really applied.
load ../cli/helpers

TINY=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/eval_tiny_model
QX=$KILN_ROOT/${KILN_BUILD:-build}/tests/tools/qx_fixture
E=$DATA/evaluate

# field FILE KEY: a number from the summary line of a results file (its first KEY, not stderr's).
field() {
    tail -n 1 "$1" | grep -o "\"$2\":[-0-9.e+]*" | head -n 1 | cut -d: -f2
}

# near A B TOL: |A - B| <= TOL.
near() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' ||
        { echo "$1 vs $2: differ by more than $3" >&2; return 1; }
}

@test "evaluate --adapter equals evaluate on the merged model (lm and classify)" {
    "$TINY" base 2
    # Training records: the ids of the evaluation texts themselves, so the adapter moves the loss.
    awk 'BEGIN { srand(3); for (i = 0; i < 24; i++) { s = "{\"input_ids\":["
        for (j = 0; j < 33; j++) s = s (j ? "," : "") int(rand() * 250) + 3; print s "]}" } }' >pre.jsonl
    train --init base --method lora --lora-r 4 --lora-alpha 8 --lora-targets q,v,down \
        --steps 10 --lr 1e-1 --seq-len 32 --batch 4 --seed 1 -q -o lora pre.jsonl
    train --init base --method lora --lora-r 4 --lora-alpha 8 --lora-targets q,v,down \
        --steps 10 --lr 1e-1 --seq-len 32 --batch 4 --seed 1 -q --merge -o merged-train pre.jsonl
    quantize-export hf -q --model base --adapter lora --dtype f32 -o merged-qx

    evaluate lm -q --model base --adapter lora -o a.jsonl "$E/docs.jsonl"
    evaluate lm -q --model merged-qx -o q.jsonl "$E/docs.jsonl"
    evaluate lm -q --model merged-train --tokenizer base/tokenizer.json -o t.jsonl "$E/docs.jsonl"
    evaluate lm -q --model base -o b.jsonl "$E/docs.jsonl"
    la=$(field a.jsonl loss)
    echo "lm loss: base $(field b.jsonl loss), --adapter $la, merged (quantize-export)" \
        "$(field q.jsonl loss), merged (train) $(field t.jsonl loss)" >&3
    near "$la" "$(field q.jsonl loss)" 1e-5
    near "$la" "$(field t.jsonl loss)" 1e-5
    run near "$la" "$(field b.jsonl loss)" 1e-3
    expect_status 1

    evaluate classify -q --model base --adapter lora --choices spam,ham -o ca.jsonl "$E/sms.jsonl"
    evaluate classify -q --model merged-qx --choices spam,ham -o cq.jsonl "$E/sms.jsonl"
    # Per example: the same prediction and log-probabilities within 1e-4.
    paste -d '\n' <(head -n 8 ca.jsonl) <(head -n 8 cq.jsonl) | awk '
        { match($0, /"prediction":"[a-z]*"/); p = substr($0, RSTART, RLENGTH)
          match($0, /"logprobs":\{"spam":[-0-9.e+]*,"ham":[-0-9.e+]*\}/)
          l = substr($0, RSTART + 19, RLENGTH - 20); split(l, v, /,"ham":/)
          if (NR % 2) { pp = p; s = v[1]; h = v[2] }
          else if (p != pp || (s - v[1])^2 > 1e-8 || (h - v[2])^2 > 1e-8) { print "differs: " $0; bad = 1 } }
        END { exit bad }'
}

@test "evaluate --adapter: an adapter for another base is a clear error, exit 1" {
    "$TINY" base 2
    "$QX" model wide 2 0 128 2>/dev/null
    "$QX" adapter wlora wide 4 8
    run evaluate lm --model base --adapter wlora -o r.jsonl "$E/docs.jsonl"
    expect_status 1
    expect_output_contains "do not fit"
    [ ! -e r.jsonl ]
}
