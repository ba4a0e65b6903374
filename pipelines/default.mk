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
#   finetuned/ ─quantize-export gguf→ model-{q8_0,q4_0}.gguf
#   {base, finetuned, GGUFs} × split/test ─evaluate classify→ eval-*.jsonl (deterministic)
#   split/test ─evaluate lm→ lm-*.jsonl (perplexity, bits per byte)
#   everything ─evaluate import→ kiln.db ─evaluate report→ report.html, report.md
#   GGUFs + tokenizer + config + card ─quantize-export bundle→ bundle.tar.zst
PIPELINE ?= default
P ?= build/pipeline/$(PIPELINE)
KB := $(B)/bin
STEP = @$(KB)/kiln-step run --log $(P)/steps.jsonl --cache $(STEP_CACHE)
STEP_CACHE ?= build/cache/steps
DATA_CACHE ?= build/cache
# The labeled dataset: a recipe (DATASET=name for datasets/name.recipe, or RECIPE=path) whose
# `npm` line pins a tarball fetched into the cache under npm pack's name, or whose `path` line
# names a local archive (relative to the recipe); PRETRAIN likewise for the unlabeled text.
DATASET ?= spamassassin
PRETRAIN ?= pretrain-en
RECIPE ?= datasets/$(DATASET).recipe
PRE_RECIPE ?= datasets/$(PRETRAIN).recipe
recipe_tgz = $(shell awk -v cache=$(DATA_CACHE) -v dir=$(dir $(1)) \
  '$$1 == "npm" { n = $$2; sub(/^@/, "", n); gsub("/", "-", n); print cache "/npm/" n "-" $$3 ".tgz" } \
   $$1 == "path" { print ($$2 ~ /^\// ? "" : dir) $$2 }' $(1))
SPAM_TGZ := $(call recipe_tgz,$(RECIPE))
PRE_TGZ := $(call recipe_tgz,$(PRE_RECIPE))

# Sizes chosen for a cold run of a few minutes on 2 cores; raise them for a better model.
VOCAB ?= 4096
PRE_STEPS ?= 300
FT_STEPS ?= 150
MAX_LEN ?= 192
THREADS ?= $(NPROC)
SEED ?= 1
empty :=
space := $(empty) $(empty)
PROMPT ?= {text}\nLabel:
COMPLETION ?= $(space){label}
CHOICES ?= spam,ham
FILTER_OPTS ?= --transform email,html,whitespace --redact all
RULES ?= pipelines/default.rules
# The files of a checkpoint directory, for rules that list them one by one as --in (other
# pipelines' .mk files); --in-dir DIR hashes and audits the whole directory and is preferred.
BASE_FILES := config.json model.safetensors tokenizer.json generation_config.json

.PHONY: pipeline pipeline-run audit FORCE
.SECONDARY:

# Options: every step depends on $(CONFIG), a file holding the settings above, rewritten only
# when one changes (`make pipeline VOCAB=8192`), and on this file (an edited recipe). Make then
# re-invokes the steps; kiln-step reruns exactly those whose command or inputs changed (and so
# what depends on them) and answers the others from the cache without running their stage.
KNOBS := PIPELINE RECIPE PRE_RECIPE RULES VOCAB PRE_STEPS FT_STEPS MAX_LEN THREADS SEED PROMPT COMPLETION CHOICES \
         FILTER_OPTS SOURCE_DATE_EPOCH
CONFIG := $(P)/config.txt
PIPELINE_MK := $(lastword $(MAKEFILE_LIST))
$(CONFIG): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(foreach v,$(KNOBS),'$(v)=$($(v))') >$@.$$$$.tmp && \
	  if cmp -s $@.$$$$.tmp $@; then rm -f $@.$$$$.tmp; else mv -f $@.$$$$.tmp $@; fi

pipeline: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@$(MAKE) --no-print-directory pipeline-run

EVALS := base finetuned q8_0 q4_0
pipeline-run: $(P)/report.html $(P)/bundle.tar.zst
	@echo "pipeline $(PIPELINE): report $(P)/report.html (and report.md), bundle $(P)/bundle.tar.zst"
	@for e in $(EVALS); do tail -n 1 $(P)/eval-$$e.jsonl | \
	  sed -E 's/.*"acc":([0-9.eE+-]+).*"macro_f1":([0-9.eE+-]+).*"majority_acc":([0-9.eE+-]+).*/\1 \2 \3/' | \
	  awk -v m=$$e '{ printf "  %-10s test accuracy %.3f  macro-F1 %.3f  (majority-class baseline accuracy %.3f)\n", m, $$1, $$2, $$3 }'; done

audit:
	@test -f $(P)/steps.jsonl || { echo "audit: no recorded run in $(P) (run make pipeline first)"; exit 1; }
	$(KB)/kiln-step audit --cache $(STEP_CACHE) $(P)/steps.jsonl

$(SPAM_TGZ): $(RECIPE) datasets/fetch
	@KILN_CACHE=$(DATA_CACHE) datasets/fetch $< >/dev/null
$(PRE_TGZ): $(PRE_RECIPE) datasets/fetch
	@KILN_CACHE=$(DATA_CACHE) datasets/fetch $< >/dev/null

$(P)/raw.jsonl.zst: $(SPAM_TGZ) $(RECIPE) $(KB)/ingest $(KB)/kiln-step
	$(STEP) --name ingest --in $< --dep $(RECIPE) --out $@ \
	  --aux $(P)/ingest.stats.json -- \
	  $(KB)/ingest -q --archive $< --stats $(P)/ingest.stats.json -o $@ $(RECIPE)

$(P)/pretrain-raw.jsonl.zst: $(PRE_TGZ) $(PRE_RECIPE) $(KB)/ingest $(KB)/kiln-step
	$(STEP) --name ingest-pretrain --in $< --dep $(PRE_RECIPE) --out $@ -- \
	  $(KB)/ingest -q --archive $< -o $@ $(PRE_RECIPE)

$(P)/dedup.jsonl.zst: $(P)/raw.jsonl.zst $(KB)/dedupe
	$(STEP) --name dedupe --in $< --out $@ --out $(P)/dedupe.rejects.jsonl.zst \
	  --aux $(P)/dedupe.stats.json -- \
	  $(KB)/dedupe -q --mode near --threshold 0.8 --rejects $(P)/dedupe.rejects.jsonl.zst \
	  --stats $(P)/dedupe.stats.json -o $@ $<

$(P)/clean.jsonl.zst: $(P)/dedup.jsonl.zst $(RULES) $(KB)/filter
	$(STEP) --name filter --in $< --dep $(RULES) --out $@ \
	  --out $(P)/filter.rejects.jsonl.zst --aux $(P)/filter.stats.json -- \
	  $(KB)/filter -q $(FILTER_OPTS) --rules $(RULES) --rejects $(P)/filter.rejects.jsonl.zst --stats $(P)/filter.stats.json \
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
	$(STEP) --name finetune --in $< --in $(P)/split/valid.sft.jsonl.zst --in-dir $(P)/base \
	  --out-dir $(P)/finetuned --aux $(P)/finetune.log.jsonl -- \
	  $(KB)/train -q --init $(P)/base --mode sft --batch 16 --steps $(FT_STEPS) --lr 1e-3 \
	  --warmup 15 --threads $(THREADS) --seed $(SEED) --valid $(P)/split/valid.sft.jsonl.zst \
	  --valid-every 50 --log $(P)/finetune.log.jsonl -o $(P)/finetuned $<

# ---- export and evaluation -----------------------------------------------------------------

$(P)/model-%.gguf: $(P)/finetuned/model.safetensors $(KB)/quantize-export
	$(STEP) --name gguf-$* --in-dir $(P)/finetuned --out $@ \
	  --aux $(P)/model-$*.report.json -- \
	  $(KB)/quantize-export gguf -q --model $(P)/finetuned --type $* --name kiln-spam \
	  --report $(P)/model-$*.report.json -o $@

# The model a name evaluates: a checkpoint directory or a GGUF file.
eval_model = $(if $(filter base finetuned,$(1)),$(P)/$(1),$(P)/model-$(1).gguf)
eval_dep = $(if $(filter base finetuned,$(1)),$(P)/$(1)/model.safetensors,$(P)/model-$(1).gguf)
eval_input = $(if $(filter base finetuned,$(1)),--in-dir $(P)/$(1),--in $(P)/model-$(1).gguf)

$(P)/eval-%.jsonl: $(P)/split/test.jsonl.zst $$(call eval_dep,$$*) $(KB)/evaluate
	$(STEP) --name eval-$* --in $< $(call eval_input,$*) \
	  --in $(P)/tokenizer.json --out $@ -- \
	  $(KB)/evaluate classify -q --model $(call eval_model,$*) \
	  --tokenizer $(P)/tokenizer.json --choices $(CHOICES) --prompt '$(PROMPT)' \
	  --completion '$(COMPLETION)' --max-len $(MAX_LEN) --threads $(THREADS) -o $@ $<

$(P)/lm-%.jsonl: $(P)/split/test.jsonl.zst $$(call eval_dep,$$*) $(KB)/evaluate
	$(STEP) --name lm-$* --in $< $(call eval_input,$*) \
	  --in $(P)/tokenizer.json --out $@ -- \
	  $(KB)/evaluate lm -q --model $(call eval_model,$*) --tokenizer $(P)/tokenizer.json \
	  --threads $(THREADS) -o $@ $<

# The database and the report are rebuilt from the (cached, deterministic) step outputs on
# every change; they hold timestamps, so they are not kiln-step outputs.
# Built under a name of its own (one per make process) and renamed, so two runs of one tree
# never write the same database.
STATS := ingest dedupe filter split balance
LMS := base finetuned q8_0
$(P)/kiln.db: $(EVALS:%=$(P)/eval-%.jsonl) $(LMS:%=$(P)/lm-%.jsonl) $(P)/pretrain.log.jsonl \
              $(P)/finetune.log.jsonl
	@db=$(P)/.kiln.db.$$$$; rm -f $$db $$db-wal $$db-shm; \
	$(KB)/evaluate import -q --db $$db --pipeline $(PIPELINE) --run-name data --kind data \
	  $(STATS:%=$(P)/%.stats.json) && \
	$(KB)/evaluate import -q --db $$db --pipeline $(PIPELINE) --run-name pretrain --kind train \
	  $(P)/pretrain.log.jsonl && \
	$(KB)/evaluate import -q --db $$db --pipeline $(PIPELINE) --run-name finetune --kind train \
	  $(P)/finetune.log.jsonl && \
	for e in $(EVALS); do $(KB)/evaluate import -q --db $$db --pipeline $(PIPELINE) \
	  --run-name $$e --kind evaluate $(P)/eval-$$e.jsonl \
	  $$( [ -f $(P)/lm-$$e.jsonl ] && echo $(P)/lm-$$e.jsonl ) || exit 1; done && \
	mv -f $$db $@ || { rm -f $$db $$db-wal $$db-shm; exit 1; }

$(P)/report.html $(P)/report.md &: $(P)/kiln.db $(KB)/evaluate
	@$(KB)/evaluate report -q --db $< -o $(P)/report.html --md $(P)/report.md

# Provenance: how every current output was made (deterministic; the bundle step itself and
# this file are left out so the record converges). It waits for every other step, so that
# under make -j it never reads the run record while a step is still to be added to it.
$(P)/provenance.jsonl: $(EVALS:%=$(P)/eval-%.jsonl) $(LMS:%=$(P)/lm-%.jsonl)
	@$(KB)/kiln-step provenance --exclude bundle -o $@ $(P)/steps.jsonl

$(P)/bundle.tar.zst: $(P)/model-q8_0.gguf $(P)/model-q4_0.gguf $(P)/provenance.jsonl \
                     $(KB)/quantize-export
	$(STEP) --name bundle --in $(P)/model-q8_0.gguf --in $(P)/model-q4_0.gguf \
	  --in $(P)/tokenizer.json --in $(P)/finetuned/config.json --in $(P)/provenance.jsonl \
	  --in $(P)/eval-finetuned.jsonl --out $@ -- env SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	  $(KB)/quantize-export bundle -q --provenance $(P)/provenance.jsonl -o $@ \
	  $(P)/model-q8_0.gguf $(P)/model-q4_0.gguf $(P)/tokenizer.json \
	  $(P)/finetuned/config.json $(P)/eval-finetuned.jsonl
SOURCE_DATE_EPOCH ?= 1700000000

# Every step re-checks its key when the settings or this file change (see KNOBS above).
STEP_TARGETS := $(P)/raw.jsonl.zst $(P)/pretrain-raw.jsonl.zst $(P)/dedup.jsonl.zst \
  $(P)/clean.jsonl.zst $(SPLITS:%=$(P)/split/%.jsonl.zst) $(P)/train-bal.jsonl.zst \
  $(P)/tokenizer.json $(P)/pretrain.tok.jsonl.zst $(P)/train-bal.sft.jsonl.zst \
  $(P)/split/valid.sft.jsonl.zst $(P)/split/test.sft.jsonl.zst $(P)/base/model.safetensors \
  $(P)/finetuned/model.safetensors $(P)/model-q8_0.gguf $(P)/model-q4_0.gguf \
  $(EVALS:%=$(P)/eval-%.jsonl) $(LMS:%=$(P)/lm-%.jsonl) $(P)/bundle.tar.zst
$(STEP_TARGETS): $(CONFIG) $(PIPELINE_MK)

# Training logs are written by their steps (--aux); naming them as targets tells make so.
$(P)/pretrain.log.jsonl: $(P)/base/model.safetensors ;
$(P)/finetune.log.jsonl: $(P)/finetuned/model.safetensors ;
