# stage-objects.mk: the object files of every stage as explicit prerequisites of its binary.
#
# Work-around, to be dropped when the top-level Makefile's stage rule is fixed: in
#   $(STAGES:%=$(B)/bin/%): $(B)/bin/%: $$(patsubst %.c,$(B)/obj/%.o,$$(wildcard stages/$$*/*.c))
# make replaces the % inside patsubst with the stem before the second expansion, so the
# prerequisites come out as the .c files and the link line gets no objects ("undefined
# reference to `main'"). Listing the objects here (a rule without a recipe adds prerequisites)
# makes $^ complete. The fix in the Makefile itself is to hide the % from the stem substitution,
# e.g. stage_objs = $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/$(1)/*.c)) and
# $$(call stage_objs,$$*) as the prerequisite.
$(foreach s,$(STAGES),$(eval $(B)/bin/$(s): $(patsubst %.c,$(B)/obj/%.o,$(wildcard stages/$(s)/*.c))))
