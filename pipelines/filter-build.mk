# Workaround until the Makefile's stage rule is fixed (filter engineer): in the static pattern
# rule `$(B)/bin/%: $$(patsubst %.c,...)` make replaces the '%' of patsubst with the stem, so
# the object files never become prerequisites and the link gets no main(). Naming them here
# adds them to the rule's prerequisites ($^). Harmless once the Makefile is fixed; delete then.
$(B)/bin/filter: $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/filter/*.c))
