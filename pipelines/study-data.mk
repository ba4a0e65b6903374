# pipelines/study-data.mk — two studies of issue 12 on the default pipeline's data and base
# model: (1) data efficiency (Oliver & Wang 2024) and (4) imbalance handling. They reuse the
# default pipeline's steps (split, tokenizer, pretrained base/, eval-base: the same files under
# $(P), and the same kiln-step cache), so only the study's own fine-tunes run. Results go into
# SQLite with `evaluate import` (pipeline = study name, run name = arm, seed = seed) and the
# report's sections report_efficiency.c and report_imbalance.c. See pipelines/README.md.
#
#   make study-efficiency   fine-tune on nested stratified subsets of EFF_SIZES and all records,
#                           STUDY_SEEDS seeds each; test accuracy / macro-F1 against size
#   make study-imbalance    raw (imbalanced) split vs undersample vs oversample vs class-weighted
#                           loss (train --class-weights auto), STUDY_SEEDS seeds each
#   make study-data         both, plus one report with both sections
#   SIZE=small              toy sizes (tests/e2e/study_data.bats); P=DIR runs elsewhere
#
# Layout (SD = $(P)/study):
#   split/train ─balance --sample N --seed S→ SD/efficiency/sS/nN.jsonl.zst ─encode→ .sft
#     ─train --init base --seed S→ SD/efficiency/sS/nN.ft/ ─evaluate classify (split/test)→ nN.eval.jsonl
#   "all" trains on split/train.sft itself; the imbalance arm "raw" is that arm (its
#   nall.eval.jsonl is imported as run "raw" too: same model, same evaluation).
#   split/train ─balance --strategy under|oversample --seed S→ SD/imbalance/sS/ARM.jsonl.zst ...
#   SD/{efficiency,imbalance,.}/kiln.db ─evaluate report→ report.html, report.md
#
# Every arm trains the same FT_STEPS optimizer steps of 16 examples (equal compute; small
# subsets are seen for more epochs), with the default pipeline's fine-tuning options.

STUDY_SEEDS ?= 1 2 3
EFF_SIZES ?= 100 200 500 1000 2000
IMB_ARMS := raw undersample oversample weighted

ifeq ($(SIZE),small)
VOCAB = 300
PRE_STEPS = 3
FT_STEPS = 3
MAX_LEN = 48
THREADS = 2
STUDY_SEEDS = 1 2
EFF_SIZES = 20 50
endif

SD = $(P)/study
EFF := $(SD)/efficiency
IMB := $(SD)/imbalance
STUDY_FT_OPTS = --mode sft --batch 16 --steps $(FT_STEPS) --lr 1e-3 --warmup 15

.PHONY: study-efficiency study-imbalance study-data

# ---- one fine-tune and its evaluation -------------------------------------------------------

# $(call study_ft,ARM,SFT,SEED,EXTRA TRAIN OPTIONS): ARM.ft/ fine-tuned from base/ on SFT, and
# ARM.eval.jsonl, its classification of split/test. (No output path may start with an input's
# path: kiln-step replaces --in/--out paths wherever they start an argument.)
define study_ft
$(1).ft/model.safetensors: $(2) $(P)/base/model.safetensors $(KB)/train
	$$(STEP) --name ft-$(subst /,-,$(patsubst $(SD)/%,%,$(1))) --in $(2) \
	  $$(foreach f,$$(BASE_FILES),--in $(P)/base/$$(f)) --out-dir $(1).ft -- \
	  $$(KB)/train -q --init $(P)/base $$(STUDY_FT_OPTS) --threads $$(THREADS) --seed $(3) $(4) \
	  -o $(1).ft $(2)

$(1).eval.jsonl: $(P)/split/test.jsonl.zst $(1).ft/model.safetensors $(KB)/evaluate
	$$(STEP) --name eval-$(subst /,-,$(patsubst $(SD)/%,%,$(1))) --in $$< \
	  $$(foreach f,$$(BASE_FILES),--in $(1).ft/$$(f)) --in $(P)/tokenizer.json --out $$@ -- \
	  $$(KB)/evaluate classify -q --model $(1).ft --tokenizer $(P)/tokenizer.json \
	  --choices $$(CHOICES) --prompt '$$(PROMPT)' --completion '$$(COMPLETION)' \
	  --max-len $$(MAX_LEN) --threads $$(THREADS) -o $$@ $$<
endef

# $(call study_subset,OUT,SEED,BALANCE OPTIONS): OUT.jsonl.zst cut from split/train.
define study_subset
$(1).jsonl.zst: $(P)/split/train.jsonl.zst $(KB)/balance
	$$(STEP) --name subset-$(subst /,-,$(patsubst $(SD)/%,%,$(1))) --in $$< --out $$@ -- \
	  $$(KB)/balance -q --seed $(2) $(3) -o $$@ $$<
endef

# ---- study 1: data efficiency ---------------------------------------------------------------

$(foreach s,$(STUDY_SEEDS),$(foreach n,$(EFF_SIZES),\
  $(eval $(call study_subset,$(EFF)/s$(s)/n$(n),$(s),--sample $(n)))\
  $(eval $(call study_ft,$(EFF)/s$(s)/n$(n),$(EFF)/s$(s)/n$(n).sft.jsonl.zst,$(s)))))
$(foreach s,$(STUDY_SEEDS),\
  $(eval $(call study_ft,$(EFF)/s$(s)/nall,$(P)/split/train.sft.jsonl.zst,$(s))))

EFF_EVALS := $(foreach s,$(STUDY_SEEDS),$(foreach n,$(EFF_SIZES) all,$(EFF)/s$(s)/n$(n).eval.jsonl))

# ---- study 4: imbalance handling ------------------------------------------------------------

$(foreach s,$(STUDY_SEEDS),\
  $(eval $(call study_subset,$(IMB)/s$(s)/undersample,$(s),--strategy undersample))\
  $(eval $(call study_subset,$(IMB)/s$(s)/oversample,$(s),--strategy oversample))\
  $(eval $(call study_ft,$(IMB)/s$(s)/undersample,$(IMB)/s$(s)/undersample.sft.jsonl.zst,$(s)))\
  $(eval $(call study_ft,$(IMB)/s$(s)/oversample,$(IMB)/s$(s)/oversample.sft.jsonl.zst,$(s)))\
  $(eval $(call study_ft,$(IMB)/s$(s)/weighted,$(P)/split/train.sft.jsonl.zst,$(s),\
    --class-weights auto)))

# The arm's evaluation: raw is efficiency's "all" arm.
imb_eval = $(if $(filter raw,$(2)),$(EFF)/s$(1)/nall,$(IMB)/s$(1)/$(2)).eval.jsonl
IMB_EVALS := $(foreach s,$(STUDY_SEEDS),$(foreach a,$(IMB_ARMS),$(call imb_eval,$(s),$(a))))

# ---- databases and reports ------------------------------------------------------------------

# Imports a study's results into DB ($(1)): the base model once (the reference line; its
# summary holds the majority-class baseline), then every arm as run "ARM" with its seed. An
# efficiency arm's name is size=N, N the records of its training set.
study_import = $(KB)/evaluate import -q --db $(1) --kind evaluate
define study_import_eff
	@for s in $(STUDY_SEEDS); do for n in $(EFF_SIZES) all; do \
	  if [ $$n = all ]; then d=$(P)/split/train.jsonl.zst; else d=$(EFF)/s$$s/n$$n.jsonl.zst; fi; \
	  c=$$(zstd -dcq $$d | wc -l) || exit 1; \
	  $(call study_import,$(1)) --pipeline study-efficiency --run-name size=$$c --seed $$s \
	    $(EFF)/s$$s/n$$n.eval.jsonl || exit 1; done; done
endef
define study_import_imb
	@for s in $(STUDY_SEEDS); do for a in $(IMB_ARMS); do \
	  if [ $$a = raw ]; then f=$(EFF)/s$$s/nall; else f=$(IMB)/s$$s/$$a; fi; \
	  $(call study_import,$(1)) --pipeline study-imbalance --run-name $$a --seed $$s \
	    $$f.eval.jsonl || exit 1; done; done
endef

$(EFF)/kiln.db: $(EFF_EVALS) $(P)/eval-base.jsonl
	@rm -f $@ $@-wal $@-shm
	@$(call study_import,$@) --pipeline study-efficiency --run-name base $(P)/eval-base.jsonl
	$(call study_import_eff,$@)

$(IMB)/kiln.db: $(IMB_EVALS) $(P)/eval-base.jsonl
	@rm -f $@ $@-wal $@-shm
	@$(call study_import,$@) --pipeline study-imbalance --run-name base $(P)/eval-base.jsonl
	$(call study_import_imb,$@)

$(SD)/kiln.db: $(EFF_EVALS) $(IMB_EVALS) $(P)/eval-base.jsonl
	@rm -f $@ $@-wal $@-shm
	@$(call study_import,$@) --pipeline study-efficiency --run-name base $(P)/eval-base.jsonl
	@$(call study_import,$@) --pipeline study-imbalance --run-name base $(P)/eval-base.jsonl
	$(call study_import_eff,$@)
	$(call study_import_imb,$@)

# The reports hold no timestamps of their own but the runs' import times, so they are not
# kiln-step outputs (like the default pipeline's report).
$(SD)/%/report.html $(SD)/%/report.md: $(SD)/%/kiln.db $(KB)/evaluate
	@$(KB)/evaluate report -q --db $< -o $(@D)/report.html --md $(@D)/report.md
$(SD)/report.html $(SD)/report.md &: $(SD)/kiln.db $(KB)/evaluate
	@$(KB)/evaluate report -q --db $< -o $(SD)/report.html --md $(SD)/report.md

# Prints a report.md section: from its "## TITLE" line to the next "## ".
study_show = @awk '/^\#\# $(2)/ { p = 1; print; next } /^\#\# / { p = 0 } p' $(1)

study-efficiency: $(EFF)/report.html
	@echo "study efficiency: report $(EFF)/report.html (and report.md)"
	$(call study_show,$(EFF)/report.md,Data efficiency)

study-imbalance: $(IMB)/report.html
	@echo "study imbalance: report $(IMB)/report.html (and report.md)"
	$(call study_show,$(IMB)/report.md,Imbalance)

study-data: $(SD)/report.html
	@echo "studies efficiency and imbalance: report $(SD)/report.html (and report.md)"
