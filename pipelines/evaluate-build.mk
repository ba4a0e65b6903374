# Workaround until the Makefile's stage rule is fixed (same as filter-build.mk): the static
# pattern rule's patsubst never names stages/evaluate/*.o, so list them here. Delete then.
$(B)/bin/evaluate: $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/evaluate/*.c))
