# Workaround for the Makefile's stage rule (see filter-build.mk): names quantize-export's object
# files as prerequisites so the link gets them. Harmless once the Makefile is fixed; delete then.
$(B)/bin/quantize-export: $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/quantize-export/*.c))
