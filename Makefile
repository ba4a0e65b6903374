# kiln — top-level Makefile: build, test, bench, fuzz, install, pipeline entry points.
#
#   make                 build libkiln.a and every stage into build/bin/
#   make test            install missing Debian packages (or say how), build, run every test
#   make test SAN=1      the same under AddressSanitizer + UndefinedBehaviorSanitizer (build/san/)
#   make bench           optimized build, benchmarks side by side with their baselines
#   make fuzz            libFuzzer targets, FUZZ_SECONDS each (default 30)
#   make pipeline        the default pipeline end to end (see pipelines/)
#   make install PREFIX=/usr/local
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:

VERSION := 0.1.0
PREFIX ?= /usr/local
SAN ?=
CC ?= cc
FUZZ_SECONDS ?= 30
NPROC := $(shell nproc 2>/dev/null || echo 2)

PKGS := libzstd libpcre2-8 libarchive sqlite3 libcrypto libxxhash libutf8proc openblas
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O2 -march=native
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
ifeq ($(SAN),)
  B := build
  SANFLAGS :=
else
  B := build/san
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  OPT := -O1 -g -march=native
endif
CFLAGS_ALL = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(OPT) -g $(WARN) $(SANFLAGS) \
             -DKILN_VERSION='"$(VERSION)"' -Icommon $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
# Open MPI for train's data-parallel mode (common/dist.c); without it dist.c is one rank only.
ifneq ($(shell pkg-config --exists ompi-c 2>/dev/null && echo y),)
  PKGS += ompi-c
  CFLAGS_ALL += -DKILN_HAVE_MPI
endif
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm $(LDLIBS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)
LIB := $(B)/libkiln.a
STAGES := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard stages/*/main.c)))))
PIPE_TOOLS := $(sort $(notdir $(basename $(wildcard pipelines/*.c))))
BINS := $(STAGES:%=$(B)/bin/%) $(PIPE_TOOLS:%=$(B)/bin/kiln-%)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(B)/tests/tools/%)
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCH_BINS := $(BENCH_SRC:tests/bench/%.c=build/bench/bin/%)
BENCH_LIBS = $(shell pkg-config --libs libcjson 2>/dev/null)
BENCH_CFLAGS = $(shell pkg-config --cflags libcjson 2>/dev/null)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/tests/replay/%)

.PHONY: all deps test unit bench fuzz install clean pipeline datasets check-format format

all: $(BINS)

deps:
	@pipelines/ensure-deps

V ?= 0
Q := $(if $(filter 1,$(V)),,@)
$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

# A stage is every .c file in stages/<name>/, linked with libkiln.a.
.SECONDEXPANSION:
# (No literal percent sign in the prerequisites: a static pattern would replace it with the stem.)
$(STAGES:%=$(B)/bin/%): $(B)/bin/%: $$(addprefix $(B)/obj/,$$(addsuffix .o,$$(basename $$(wildcard stages/$$*/*.c)))) $(LIB)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS_ALL)

# Report assets (reports/*.sql, *.html, *.css, *.md) embedded into the evaluate stage, which
# renders reports from the SQLite store: report_asset(name, &len).
REPORT_ASSETS := $(sort $(wildcard reports/*.sql reports/*.html reports/*.css reports/*.md))
$(B)/gen/reports_embed.c: reports/embed.sh $(REPORT_ASSETS)
	@mkdir -p $(@D)
	reports/embed.sh $(REPORT_ASSETS) > $@
$(B)/obj/gen/reports_embed.o: $(B)/gen/reports_embed.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -c $< -o $@
$(B)/bin/evaluate: $(B)/obj/gen/reports_embed.o

# Pipeline helper programs: pipelines/<name>.c -> kiln-<name>.
$(B)/bin/kiln-%: $(B)/obj/pipelines/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

# Test helper programs (tests/tools/*.c), one file each, linked with libkiln.a.
$(B)/tests/tools/%: $(B)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

# Benchmark programs (tests/bench/*.c): always the optimized build; may use baseline libraries.
build/bench/bin/%: tests/bench/%.c build/libkiln.a
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O2 -march=native -g -Icommon $(PKG_CFLAGS) \
	  $(BENCH_CFLAGS) -o $@ $< build/libkiln.a $(BENCH_LIBS) $(PKG_LIBS) -lpthread -lm

# Each fuzz target also built with the ordinary compiler and flags (and SAN=1's sanitizers)
# around tests/fuzz/replay.c, which feeds it its seed corpus: tests/run.sh runs these.
$(B)/tests/replay/%: $(B)/obj/tests/fuzz/%.o $(B)/obj/tests/fuzz/replay.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIB) $(LDLIBS_ALL)

unit: $(UNIT_BINS) $(TOOL_BINS) $(REPLAY_BINS)

test: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all unit SAN=$(SAN)
	@KILN_BUILD=$(B) tests/run.sh

bench: deps
	@pipelines/ensure-deps pipelines/deps.txt pipelines/deps-bench.txt
	@$(MAKE) --no-print-directory -j$(NPROC) all unit $(BENCH_BINS)
	@KILN_BUILD=build tests/bench/run.sh

# libFuzzer targets: clang, with every common/ source compiled in, for this machine's vector
# units like the ordinary build (-march=native), so the SIMD paths it ships are the ones fuzzed.
FUZZ_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O1 -g -march=native \
              -fsanitize=fuzzer,address,undefined \
              -DKILN_VERSION='"$(VERSION)"' -Icommon $(PKG_CFLAGS)
build/fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(wildcard common/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(PKG_LIBS) -lpthread -lm

fuzz: deps $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	for s in $(STAGES); do install -m 755 $(B)/bin/$$s $(DESTDIR)$(PREFIX)/bin/kiln-$$s; \
	  if [ -f stages/$$s/$$s.1 ]; then \
	    install -m 644 stages/$$s/$$s.1 $(DESTDIR)$(PREFIX)/share/man/man1/kiln-$$s.1; fi; done

format:
	clang-format -i common/*.[ch] stages/*/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
-include $(sort $(wildcard pipelines/*.mk))
