#!/usr/bin/env bats
# evaluate report's study sections (report_study_data.c) on a hand-made database whose numbers
# are worked out here: per-size mean ± sample sd over seeds, the saturation point (smallest
# size within 0.01 of the best mean), the base and majority reference lines, and per-arm
# imbalance metrics with the Brier score computed from per-example probabilities; the
# efficiency chart's log x axis; every study section rendered in headless Chromium.
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
    # x on a log scale: labelled ticks at 1, 2 and 5 times powers of ten within 100..2000, and
    # the points at 100, 1000 and 2000 log-spaced: 1000 sits log(10)/log(20) = 76.9% of the way
    # from 100 to 2000 (47.4% on a linear axis)
    [ "$(grep -o 'text-anchor="middle">[0-9]*</text>' r.html | sort | uniq -c | awk '{ print $1, $2 }' |
        grep -o '^[0-9]* text-anchor="middle">[0-9]*' | sed 's/ text-anchor="middle">/:/' | tr '\n' ' ')" \
        = "2:1000 2:100 2:2000 2:200 2:500 " ]
    grep -o 'stroke="#2b6cb0" stroke-width="2" points="[^"]*"' r.html | sed 's/.*points="//; s/"//' |
        awk '{ split($1, a, ","); split($2, b, ","); split($3, c, ",");
               f = (b[1] - a[1]) / (c[1] - a[1]); if (f < 0.765 || f > 0.773) exit 1; n++ }
             END { exit n != 2 }'
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

# hist FILE: four scored candidates of a search method, as kiln-hpo record writes them.
hpo_hist() {
    cat > "$1" <<'J'
{"method":"bo","index":1,"lr":0.001,"batch":8,"epochs":1,"steps":100,"early_steps":20,"early":0.5,"final":0.7}
{"method":"bo","index":2,"lr":0.0001,"batch":16,"epochs":0.5,"steps":25,"early_steps":5,"early":0.2,"final":0.3}
{"method":"bo","index":3,"lr":0.005,"batch":4,"epochs":2,"steps":400,"early_steps":80,"early":0.6,"final":0.8}
{"method":"bo","index":4,"lr":0.003,"batch":32,"epochs":1.5,"steps":40,"early_steps":8,"early":0.65,"final":0.75}
J
}

@test "every study section renders in headless Chromium without console errors" {
    if ! command -v chromium > /dev/null; then
        echo "# SKIPPED LOUDLY: chromium is not installed (apt-get install chromium)" >&3
        skip "chromium is not installed"
    fi
    make_db
    hpo_hist h
    sed 's/"bo"/"random"/' h > r
    kiln-hpo import --db k.db --seed 1 h r
    {
        for m in 1:base:0.31:9.0 2:full:0.86:14.5 3:lora-r8:0.84:10.2; do
            IFS=: read -r i name acc ppl <<< "$m"
            echo "INSERT INTO runs(id, uuid, kind, name, pipeline, status, started_at)
                  VALUES($((40 + i)), 'm$i', 'study-methods', '$name', 'study-methods', 'ok',
                         '2026-01-01T00:00:00Z');
                  INSERT INTO results(run_id, metric, value, stderr)
                  VALUES($((40 + i)), 'acc', $acc, 0.01), ($((40 + i)), 'macro_f1', $acc, NULL),
                        ($((40 + i)), 'perplexity', $ppl, NULL);"
        done
    } | sqlite3 k.db
    evaluate report --db k.db -o report.html --md report.md
    for t in "Data efficiency" "Early-stage hyperparameter search" "Fine-tuning methods" \
        "Imbalance handling"; do
        grep -q "<h2>$t" report.html
    done
    [ "$(grep -c '<svg' report.html)" -ge 6 ]
    if grep -Eqwi 'nan|inf' report.html; then false; fi
    dir=$(mktemp -d "$BATS_TEST_TMPDIR/chrome.XXXXXX")
    timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$dir" --enable-logging=stderr --v=0 --window-size=1000,4000 \
        --screenshot=report.png "file://$PWD/report.html" 2> chrome.log
    [ -s report.png ]
    # An SVG attribute Chromium cannot parse (e.g. "nan" in points) is a CONSOLE error here.
    if grep -E 'CONSOLE|Uncaught|Failed to load' chrome.log; then
        echo "console errors above" >&2
        return 1
    fi
}
