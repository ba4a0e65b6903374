# Workaround until the Makefile's stage rule is fixed (tokenize engineer; same as
# dedupe-build.mk): the static pattern rule's patsubst gets the stem for its '%', so the stage's
# objects never reach the link. Naming them here adds them to $^. Delete once fixed.
$(B)/bin/tokenize: $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/tokenize/*.c))
