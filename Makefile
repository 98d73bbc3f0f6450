# Shoebox: the two commands a person needs are `make run` and `make test`.
# Everything else here serves them (and the sanitizer, fuzz and bench builds).

BUILD      ?= build
SAN_BUILD  ?= build-san
FUZZ_BUILD ?= build-fuzz
DATA       ?= ./data
LISTEN     ?= 127.0.0.1:8080
SHOEBOX_TESTDATA ?= $(abspath ../shared/testdata)
export SHOEBOX_TESTDATA

.PHONY: all deps test-deps build run test sanitize fuzz bench format clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Start the server with SQLite under ./data; the first start prints the admin password.
run: build
	@mkdir -p $(DATA)
	./$(BUILD)/shoebox serve --listen $(LISTEN) --data $(DATA)

test: test-deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	python3 tests/run.py --build $(BUILD)

$(SAN_BUILD)/build.ninja:
	meson setup $(SAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, leaks on.
sanitize: test-deps $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	python3 tests/run.py --build $(SAN_BUILD) --sanitize

$(FUZZ_BUILD)/build.ninja:
	@scripts/install-deps.sh fuzz
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debug -Dlibfuzzer=true \
	    -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link

# Real libFuzzer runs (FUZZ_SECONDS each), every library instrumented. New inputs go to
# $(FUZZ_BUILD)/corpus/<target>/; a crash is written to tests/fuzz/corpus/<target>/ so it
# is committed with its fix and replayed by make test from then on.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = sniff header process multipart form s3xml
fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) $(addprefix tests/fuzz/fuzz_,$(FUZZ_TARGETS))
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    $(FUZZ_BUILD)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=tests/fuzz/corpus/$$t/crash- \
	        $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

bench: build
	@scripts/install-deps.sh bench
	bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
