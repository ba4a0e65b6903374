# pipelines/study-hpo.mk — study 2 of issue 12: early-stage hyperparameter search (Oliver &
# Wang 2024: scoring candidates at 20% of their training budget kept 4 of the final top 5).
#
#   make study-hpo              run the study (after the default pipeline's data and base model)
#   make study-hpo SIZE=small   the few-second setting of tests/e2e/study_hpo.bats
#
# Candidates (learning rate, batch size, epochs) are proposed one at a time by kiln-hpo
# (pipelines/hpo.c) with Bayesian optimization (GP + expected improvement on the early scores)
# and with random search; both share the first HPO_INIT candidates. Each candidate fine-tunes
# the default pipeline's base model on its balanced training pairs once, to completion, with a
# checkpoint at HPO_EARLY of its steps (train's checkpoints are exact prefixes: --resume from
# one ends byte-identical to the uninterrupted run, tests/cli/train.bats), and is scored with
# `evaluate classify` on the validation split at the checkpoint (early) and at the end (final).
# Every step runs through kiln-step, so identical candidates of the two methods train once and
# a rerun runs nothing. Outputs in $(HPO) = $(P)/hpo:
#   {bo,random}/cand-NN.json   the proposal       {bo,random}/run-NN/     the trained model
#   models/RUN_KEY             a link to the run of a candidate (evaluations use it)
#   {bo,random}/early-NN.jsonl, final-NN.jsonl    validation scores at the checkpoint and end
#   {bo,random}/history-NN.jsonl                  candidates 1..NN with scores (kiln-hpo record)
#   summary.txt                                   overlap, rank correlations, compute saved
#   kiln.db, report.html, report.md               the report's "Early-stage hyperparameter search"
#
# Data flow: default pipeline (P) base/, train-bal.sft, split/valid ─┐
#   history-(N-1) ─kiln-hpo propose→ cand-N ─train→ run-N ─evaluate classify ×2→ early-N, final-N
#   cand-N + early-N + final-N ─kiln-hpo record→ result-N; history-(N-1) + result-N → history-N
#
# Measured run time of the full setting and its results: pipelines/study-hpo.md.
HPO ?= $(P)/hpo
HPO_METHODS := bo random
ifeq ($(SIZE),small)
HPO_N ?= 5
HPO_INIT ?= 3
HPO_EPOCHS ?= 0.02,0.06
HPO_BATCHES ?= 2,4
else
HPO_N ?= 8
HPO_INIT ?= 3
HPO_EPOCHS ?= 0.05,0.4
HPO_BATCHES ?= 8,16,32
endif
HPO_LR ?= 1e-4,1e-2
HPO_EARLY ?= 0.2
HPO_TOP ?= 5
HPO_SEED ?= $(SEED)
HPO_TRAIN := $(P)/train-bal.sft.jsonl.zst
HPO_VALID := $(P)/split/valid.jsonl.zst
HPO_STEP = $(KB)/kiln-step run --log $(P)/steps.jsonl --cache $(STEP_CACHE)
HPO_IDX := $(shell seq -f %02g 1 $(HPO_N))
HPO_LAST := $(lastword $(HPO_IDX))

.PHONY: study-hpo

study-hpo: $(HPO)/report.html $(HPO)/summary.txt
	@cat $(HPO)/summary.txt
	@echo "study-hpo: report $(HPO)/report.html (and report.md)"

# The empty history before the first candidate.
$(HPO)/%/history-00.jsonl:
	@mkdir -p $(@D) && : > $@

# hpo_candidate(method, index, previous index): the steps of one candidate.
define hpo_candidate
$(HPO)/$(1)/cand-$(2).json: $(HPO)/$(1)/history-$(3).jsonl $(HPO_TRAIN) $(KB)/kiln-hpo
	@$(HPO_STEP) --name hpo-$(1)-propose-$(2) --in $$< --in $(P)/train-bal.sft.stats.json \
	  --out $$@ -- $(KB)/kiln-hpo propose --method $(1) --seed $(HPO_SEED) --init $(HPO_INIT) \
	  --lr-range $(HPO_LR) --batches $(HPO_BATCHES) --epochs-range $(HPO_EPOCHS) \
	  --early-frac $(HPO_EARLY) --history $$< --train-stats $(P)/train-bal.sft.stats.json -o $$@

# The candidate's options are expanded into the command, so the cache key is the training
# run itself: the same candidate under both methods trains once.
$(HPO)/$(1)/run-$(2)/model.safetensors: $(HPO)/$(1)/cand-$(2).json $(HPO_TRAIN) \
                                        $(P)/base/model.safetensors $(KB)/train \
                                        $(call hpo_after_bo,$(1),$(2))
	@a=$$$$($(KB)/kiln-hpo args $$<) && $(HPO_STEP) --name hpo-$(1)-train-$(2) \
	  --in $(HPO_TRAIN) $(foreach f,$(BASE_FILES),--in $(P)/base/$(f)) \
	  --out-dir $(HPO)/$(1)/run-$(2) -- $(KB)/train -q --init $(P)/base --mode sft $$$$a \
	  --threads $(THREADS) --seed $(SEED) -o $(HPO)/$(1)/run-$(2) $(HPO_TRAIN)

# Evaluations name the model by the candidate's run_key (a link to its run), so the same
# candidate under both methods is evaluated once too.
$(HPO)/$(1)/early-$(2).jsonl: $(HPO)/$(1)/run-$(2)/model.safetensors $(HPO_VALID) $(KB)/evaluate
	@m=$$$$($(call hpo_link,$(1),$(2)))/checkpoint-$$$$($(KB)/kiln-hpo field \
	  $(HPO)/$(1)/cand-$(2).json early_steps) && $(HPO_STEP) --name hpo-$(1)-early-$(2) \
	  --in $(HPO_VALID) $(foreach f,$(BASE_FILES),--in $$$$m/$(f)) --in $(P)/tokenizer.json \
	  --out $$@ -- $(KB)/evaluate classify -q --model $$$$m $$(HPO_CLASSIFY) $(HPO_VALID)

$(HPO)/$(1)/final-$(2).jsonl: $(HPO)/$(1)/run-$(2)/model.safetensors $(HPO_VALID) $(KB)/evaluate
	@m=$$$$($(call hpo_link,$(1),$(2))) && $(HPO_STEP) --name hpo-$(1)-final-$(2) \
	  --in $(HPO_VALID) $(foreach f,$(BASE_FILES),--in $$$$m/$(f)) --in $(P)/tokenizer.json \
	  --out $$@ -- $(KB)/evaluate classify -q --model $$$$m $$(HPO_CLASSIFY) $(HPO_VALID)

$(HPO)/$(1)/result-$(2).json: $(HPO)/$(1)/cand-$(2).json $(HPO)/$(1)/early-$(2).jsonl \
                              $(HPO)/$(1)/final-$(2).jsonl $(KB)/kiln-hpo
	@$(HPO_STEP) --name hpo-$(1)-record-$(2) --in $$< --in $(HPO)/$(1)/early-$(2).jsonl \
	  --in $(HPO)/$(1)/final-$(2).jsonl --out $$@ -- $(KB)/kiln-hpo record --candidate $$< \
	  --early $(HPO)/$(1)/early-$(2).jsonl --final $(HPO)/$(1)/final-$(2).jsonl -o $$@

$(HPO)/$(1)/history-$(2).jsonl: $(HPO)/$(1)/history-$(3).jsonl $(HPO)/$(1)/result-$(2).json
	@cat $$^ > $$@.tmp && mv $$@.tmp $$@
endef

# hpo_after_bo(method, index): the shared initial candidates of the other methods wait for
# BO's to be trained and scored (order only), so under make -j they are cache hits, not
# concurrent reruns of the same steps.
hpo_after_bo = $(if $(filter-out bo,$(1)),$(if $(filter $(2),$(wordlist 1,$(HPO_INIT),$(HPO_IDX))),\
  | $(HPO)/bo/result-$(2).json))

# hpo_link(method, index): shell commands printing $(HPO)/models/RUN_KEY, a link to the run
# (created by whichever method gets there first; runs with one key are identical).
hpo_link = k=$$$$($(KB)/kiln-hpo field $(HPO)/$(1)/cand-$(2).json run_key) \
  && mkdir -p $(HPO)/models && { ln -s ../$(1)/run-$(2) $(HPO)/models/$$$$k 2>/dev/null; \
  test -d $(HPO)/models/$$$$k; } && echo $(HPO)/models/$$$$k

HPO_CLASSIFY = --tokenizer $(P)/tokenizer.json --choices $(CHOICES) --prompt '$(PROMPT)' \
  --completion '$(COMPLETION)' --max-len $(MAX_LEN) --threads $(THREADS) -o $@

hpo_prev = $(if $(filter 1,$(1)),00,$(word $(shell expr $(1) - 1),$(HPO_IDX)))
$(foreach m,$(HPO_METHODS),$(foreach i,$(shell seq 1 $(HPO_N)),$(eval \
  $(call hpo_candidate,$(m),$(word $(i),$(HPO_IDX)),$(call hpo_prev,$(i))))))

HPO_HIST := $(HPO_METHODS:%=$(HPO)/%/history-$(HPO_LAST).jsonl)

$(HPO)/summary.txt: $(HPO_HIST) $(KB)/kiln-hpo
	@$(KB)/kiln-hpo summary --top $(HPO_TOP) -o $@ $(HPO_HIST)

# The database holds timestamps, so like the default pipeline's it is rebuilt, not cached.
$(HPO)/kiln.db: $(HPO_HIST) $(KB)/kiln-hpo
	@rm -f $@ $@-wal $@-shm
	@$(KB)/kiln-hpo import --db $@ --pipeline study-hpo --seed $(HPO_SEED) $(HPO_HIST)

$(HPO)/report.html $(HPO)/report.md &: $(HPO)/kiln.db $(KB)/evaluate
	@$(KB)/evaluate report -q --db $< -o $(HPO)/report.html --md $(HPO)/report.md
