# The same verbs as scripts/dev.py, for people who prefer make. CI calls scripts/dev.py directly.
PY ?= python3
DEV := $(PY) scripts/dev.py

.PHONY: install run dev test test-pg test-browser adversarial bench bench-smoke lint format typecheck layers check lock

install:   ; $(DEV) install
run:       ; $(DEV) run
dev:       ; $(DEV) dev
test:      ; $(DEV) test
test-pg:   ; TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres} $(DEV) test
test-browser: ; $(DEV) test-browser
adversarial: ; $(DEV) adversarial
bench:     ; $(DEV) bench
bench-smoke: ; $(DEV) bench --smoke
lint:      ; $(DEV) lint
format:    ; $(DEV) format
typecheck: ; $(DEV) typecheck
layers:    ; $(DEV) layers
check:     ; $(DEV) check
lock:      ; $(DEV) lock
