#!/usr/bin/env bats
# evaluate report's study sections (report_study_data.c) on a hand-made database whose numbers
# are worked out here: per-size mean ± sample sd over seeds, the saturation point (smallest
# size within 0.01 of the best mean), the base and majority reference lines, and per-arm
# imbalance metrics with the Brier score computed from per-example probabilities.
load helpers

# run ID KIND NAME PIPELINE SEED, then results METRIC=VALUE...
sql_run() {
    local id=$1 name=$2 pipe=$3 seed=$4
    shift 4
    echo "INSERT INTO runs(id, uuid, kind, name, pipeline, status, started_at, seed)
          VALUES($id, 'u$id', 'evaluate', '$name', '$pipe', 'ok', '2026-01-01T00:00:00Z', $seed);"
    for kv in "$@"; do
        echo "INSERT INTO results(run_id, metric, value) VALUES($id, '${kv%%=*}', ${kv#*=});"
    done
}

# Two test examples per run: gold spam with p(spam) = $2, gold ham with p(spam) = $3.
# Brier = ((1-a)^2 + (1-a)^2 + b^2 + b^2) / 2 = (1-a)^2 + b^2.
sql_examples() {
    echo "INSERT INTO examples(run_id, example_id, gold, prediction, correct, probs) VALUES
          ($1, 'e1', 'spam', 'spam', 1, '{\"spam\":$2,\"ham\":$(awk "BEGIN{print 1-$2}")}'),
          ($1, 'e2', 'ham', 'ham', 1, '{\"spam\":$3,\"ham\":$(awk "BEGIN{print 1-$3}")}');"
}

make_db() {
    echo '{"stage":"x","version":"1","records_in":1,"records_out":1}' > s.json
    evaluate import -q --db k.db --run-name schema s.json
    {
        sql_run 10 base study-efficiency 0 acc=0.7 macro_f1=0.41 majority_acc=0.69 majority_macro_f1=0.408
        sql_run 11 size=100 study-efficiency 1 acc=0.80 macro_f1=0.70
        sql_run 12 size=100 study-efficiency 2 acc=0.90 macro_f1=0.80
        sql_run 13 size=1000 study-efficiency 1 acc=0.95 macro_f1=0.90
        sql_run 14 size=1000 study-efficiency 2 acc=0.97 macro_f1=0.95
        sql_run 15 size=2000 study-efficiency 1 acc=0.96 macro_f1=0.93
        sql_run 16 size=2000 study-efficiency 2 acc=0.96 macro_f1=0.93
        sql_run 20 base study-imbalance 0 acc=0.7 macro_f1=0.41 majority_acc=0.69 majority_macro_f1=0.408
        sql_run 21 raw study-imbalance 1 macro_f1=0.80 acc=0.85 mcc=0.6 ece=0.10 recall/spam=0.6 recall/ham=0.95
        sql_run 22 raw study-imbalance 2 macro_f1=0.90 acc=0.91 mcc=0.8 ece=0.20 recall/spam=0.8 recall/ham=0.97
        sql_run 23 weighted study-imbalance 1 macro_f1=0.88 acc=0.89 mcc=0.7 ece=0.05 recall/spam=0.9 recall/ham=0.88
        sql_examples 21 0.8 0.4   # Brier 0.04 + 0.16 = 0.20
        sql_examples 22 0.7 0.4   # Brier 0.09 + 0.16 = 0.25
        sql_examples 23 0.9 0.1   # Brier 0.01 + 0.01 = 0.02
    } | sqlite3 k.db
}

@test "data efficiency: mean ± sd per size, references, saturation" {
    make_db
    run evaluate report --db k.db -o r.html --md r.md
    expect_status 0
    grep -qF "| 100 | 2 | 0.8500 ± 0.0707 | 0.7500 ± 0.0707 |" r.md
    grep -qF "| 1000 | 2 | 0.9600 ± 0.0141 | 0.9250 ± 0.0354 |" r.md
    grep -qF "| 2000 | 2 | 0.9600 ± 0.0000 | 0.9300 ± 0.0000 |" r.md
    grep -qF "| base model (no fine-tuning) | – | 0.7000 | 0.4100 |" r.md
    grep -qF "| majority class | – | 0.6900 | 0.4080 |" r.md
    # accuracy: best 0.96 first reached at 1000; macro-F1: best 0.93 at 2000, 0.925 within 0.01
    grep -qF -- "- accuracy saturates at **1000** training records (mean 0.9600; best mean 0.9600 at 1000)" r.md
    grep -qF -- "- macro-F1 saturates at **1000** training records (mean 0.9250; best mean 0.9300 at 2000)" r.md
    # HTML: two charts with error bars (whisker paths) and dashed reference lines
    [ "$(grep -o 'test [a-zF1-]* against training records' r.html | wc -l)" -eq 2 ]
    [ "$(grep -o 'stroke-dasharray="6 4"' r.html | wc -l)" -eq 4 ]
    grep -q '<path d="M[0-9.]* [0-9.]*V' r.html
}

@test "imbalance: per-arm metrics, Brier from probabilities, best arms" {
    make_db
    evaluate report --db k.db -o r.html --md r.md
    grep -qF "| arm | seeds | macro_f1 | accuracy | mcc | recall/ham | recall/spam | ece | brier |" r.md
    grep -qF "| raw | 2 | 0.8500 ± 0.0707 | 0.8800 ± 0.0424 | 0.7000 ± 0.1414 | 0.9600 ± 0.0141 | 0.7000 ± 0.1414 | 0.1500 ± 0.0707 | 0.2250 ± 0.0354 |" r.md
    grep -qF "| weighted | 1 | 0.8800 | 0.8900 | 0.7000 | 0.8800 | 0.9000 | 0.0500 | 0.0200 |" r.md
    grep -qF "| majority class | – | 0.4080 | 0.6900 | – | – | – | – | – |" r.md
    grep -qF -- "- best macro-F1 (higher is better): **weighted** (0.8800)" r.md
    grep -qF -- "- best ECE (lower is better): **weighted** (0.0500)" r.md
    grep -qF -- "- best Brier score (lower is better): **weighted** (0.0200)" r.md
    grep -q "<h2>Imbalance handling</h2>" r.html
}

@test "a database without study runs has neither section" {
    echo '{"stage":"x","version":"1","records_in":1,"records_out":1}' > s.json
    evaluate import -q --db k.db --run-name data s.json
    evaluate report --db k.db -o r.html --md r.md
    if grep -q "Data efficiency\|Imbalance handling" r.md r.html; then false; fi
}
