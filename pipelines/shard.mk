# pipelines/shard.mk — the default pipeline's record-wise data steps (dedupe, filter) run in
# shards on an engine chosen with one variable; the merged result is byte for byte what the
# unsharded steps write. See pipelines/README.md, "Sharded runs".
#
#   make shard-pipeline SHARDS=8 ENGINE=local|parallel|slurm [SHARD_IN=FILE] [SP=DIR]
#
# Steps (each shard step is one task of an array run by pipelines/shard-array, which skips
# tasks whose completion marker is current; per-shard record steps also go through kiln-step,
# so they are content-hashed and cached per shard):
#   shard split ─→ parts/in-I ─dedupe --phase sign (×SHARDS)→ dd/sign-I.*
#   ─dedupe --phase bucket (×RANGES)→ dd/pairs-J ─then dedupe --phase cluster→ dd/decide-I
#   ─dedupe --phase apply + filter (×SHARDS, kiln-step each)→ parts/clean-I
#   ─then shard merge→ clean.jsonl.zst, dedupe.rejects.jsonl.zst, filter.rejects.jsonl.zst
# Nothing here depends on ENGINE: shard-array reads it (and JOBS, SSHLOGIN, SBATCH_ARGS from
# the environment or make's command line).
SHARDS ?= 3
RANGES ?= $(SHARDS)
ENGINE ?= local
SP ?= build/pipeline/shard
SHARD_IN ?= $(P)/raw.jsonl.zst
SHARD_DEDUPE ?= --mode near --threshold 0.8
SHARD_FILTER ?= --transform email,html,whitespace --rules pipelines/default.rules --redact all
# zstd level of the parts between steps (merge writes the outputs at the default level 3):
# level 1 costs dedupe apply 40% less CPU than 3 (stages/shard/README.md, "Numbers").
PART_LEVEL ?= 1

SHARD_IDX = $(shell seq 0 $$(( $(SHARDS) - 1 )))
SHARD_ARRAY = ENGINE=$(ENGINE) pipelines/shard-array
SHARD_STEP = $(abspath $(KB))/kiln-step run --log $(SP)/steps.jsonl --cache $(STEP_CACHE)
SHARD_DD = $(KB)/dedupe -q $(SHARD_DEDUPE) --work $(SP)/dd --shards $(SHARDS) --ranges $(RANGES)
shard_parts = $(foreach i,$(SHARD_IDX),$(SP)/parts/$(1)-$(i).jsonl.zst)

.PHONY: shard-pipeline
shard-pipeline: $(SP)/clean.jsonl.zst
	@echo "shard-pipeline: $(SHARDS) shards on $(ENGINE): $(SP)/clean.jsonl.zst"

$(SP)/.split: $(SHARD_IN) $(KB)/shard
	@mkdir -p $(SP)/parts
	$(KB)/shard split -q --level $(PART_LEVEL) -n $(SHARDS) -o '$(SP)/parts/in-{}.jsonl.zst' $<
	@touch $@

$(SP)/.signed: $(SP)/.split $(KB)/dedupe
	$(SHARD_ARRAY) $(foreach f,$(call shard_parts,in) $(KB)/dedupe,--in $(f)) sign $(SHARDS) $(SP) \
	  '$(SHARD_DD) --phase sign --shard {} $(SP)/parts/in-{}.jsonl.zst'
	@touch $@

$(SP)/.clustered: $(SP)/.signed
	$(SHARD_ARRAY) --in $(SP)/.signed --then '$(SHARD_DD) --phase cluster \
	  --stats $(SP)/dedupe-cluster.stats.json' bucket $(RANGES) $(SP) \
	  '$(SHARD_DD) --phase bucket --range {}'
	@touch $@

$(SP)/clean.jsonl.zst $(SP)/dedupe.rejects.jsonl.zst $(SP)/filter.rejects.jsonl.zst &: \
    $(SP)/.clustered pipelines/default.rules $(KB)/filter
	$(SHARD_ARRAY) $(foreach f,$(SP)/.clustered pipelines/default.rules $(KB)/filter,--in $(f)) \
	  --then '$(KB)/shard merge -q -o $(SP)/clean.jsonl.zst $(call shard_parts,clean) && \
	    $(KB)/shard merge -q -o $(SP)/dedupe.rejects.jsonl.zst $(call shard_parts,drej) && \
	    $(KB)/shard merge -q -o $(SP)/filter.rejects.jsonl.zst $(call shard_parts,frej)' \
	  apply $(SHARDS) $(SP) \
	  '$(SHARD_STEP) --name shard-dedupe-{} --in $(SP)/parts/in-{}.jsonl.zst \
	     --in $(SP)/dd/decide-{} --out $(SP)/parts/dedup-{}.jsonl.zst \
	     --out $(SP)/parts/drej-{}.jsonl.zst -- $(SHARD_DD) --phase apply --shard {} --level $(PART_LEVEL) \
	     --rejects $(SP)/parts/drej-{}.jsonl.zst -o $(SP)/parts/dedup-{}.jsonl.zst \
	     $(SP)/parts/in-{}.jsonl.zst && \
	   $(SHARD_STEP) --name shard-filter-{} --in $(SP)/parts/dedup-{}.jsonl.zst \
	     --dep pipelines/default.rules --out $(SP)/parts/clean-{}.jsonl.zst \
	     --out $(SP)/parts/frej-{}.jsonl.zst -- $(KB)/filter -q --level $(PART_LEVEL) $(SHARD_FILTER) \
	     --rejects $(SP)/parts/frej-{}.jsonl.zst -o $(SP)/parts/clean-{}.jsonl.zst \
	     $(SP)/parts/dedup-{}.jsonl.zst'
