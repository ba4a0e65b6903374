# datasets.mk — `make datasets`: the pinned dataset recipes in datasets/ turned into record
# streams under build/data/. Each recipe's tarball is fetched once into the cache
# (KILN_CACHE, default build/cache) and its integrity verified by datasets/fetch; ingest then
# reads it straight from the archive (nothing is extracted).
#
#   make datasets                         build/data/spamassassin.jsonl.zst, pretrain-en.jsonl.zst
#   make build/data/spamassassin.jsonl.zst


DATASETS := spamassassin pretrain-en

datasets: $(DATASETS:%=build/data/%.jsonl.zst)

build/data/%.jsonl.zst: datasets/%.recipe datasets/fetch $(B)/bin/ingest
	@mkdir -p $(@D)
	datasets/fetch $<
	$(B)/bin/ingest --no-progress --stats build/data/$*.stats.json -o $@ $<
