# Two commands do everything on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: setup setup-train demo test explorer lint typecheck generated proto graphql-breaking bench bench-ingest bench-stream bench-stream-lsst bench-catalog bench-features bench-anomaly bench-lc-latency bench-stamp bench-gateway bench-filters bench-codec kafka clean

GRAPHIQL := tools/graphiql/node_modules/graphiql/package.json
$(GRAPHIQL): tools/graphiql/package.json  # GraphiQL's page assets, served by the gateway (offline)
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix tools/graphiql --no-package-lock --no-audit --no-fund --loglevel=error --ignore-scripts && touch $(GRAPHIQL) \
	    || echo "npm install failed: GraphiQL will load its assets from unpkg.com"; \
	else echo "npm not found: GraphiQL will load its assets from unpkg.com"; fi

setup: $(GRAPHIQL)  ## create .venv with the locked dependencies (installs uv when missing)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --inexact

setup-train: setup  ## add the training group (torch, onnx: ~3 GB); tests and training need it
	$(UV) sync --frozen --inexact --group train

demo: setup  ## ingest real (../shared) and simulated alerts, then serve GraphQL on :8000
	$(UV) run nightjar demo

lint: setup-train
	$(UV) run ruff check .

typecheck: setup-train
	$(UV) run mypy
	$(UV) run mypy tom_nightjar/tom_nightjar tom_nightjar/example_tom  # the TOM module (Django untyped here)

generated: setup-train  ## fail when generated files drift from their sources
	$(UV) run python -m tools.gen_ztf_schema --check
	$(UV) run python -m tools.export_graphql_schema --check
	$(UV) run python -m tools.gen_protos --check
	$(UV) run python -m tools.gen_client --check
	$(UV) run python -m tools.gen_filter_docs --check
	$(UV) run python -m tools.gen_explorer --check

explorer: setup  ## rebuild the web explorer's committed bundle from tools/explorer (needs Node)
	$(UV) run python -m tools.gen_explorer

BUF := tools/buf/node_modules/.bin/buf
$(BUF): tools/buf/package.json  # exact version pinned there; npm ci trips over buf's per-platform optional packages
	npm install --prefix tools/buf --no-package-lock --no-audit --no-fund --loglevel=error
	@touch $(BUF)

proto: $(BUF)  ## buf lint, and buf breaking against the merge base (branch) or HEAD~1 (main)
	$(BUF) lint
	@ref=$$($(UV) run python -m tools.buf_base) || exit 1; \
	if [ -n "$$ref" ]; then $(BUF) breaking --against ".git#ref=$$ref"; fi

graphql-breaking: setup  ## fail when graphql/schema.graphql breaks clients (against the same base as buf)
	$(UV) run python -m tools.graphql_breaking

test: lint typecheck generated proto graphql-breaking  ## lint, type-check, drift checks and the whole test suite
	$(UV) run pytest

bench: bench-ingest bench-stream bench-stream-lsst bench-catalog bench-features bench-anomaly bench-lc-latency bench-stamp bench-gateway bench-filters bench-codec  ## all benchmarks (see README)

bench-ingest: setup  ## decode and embedded ingest throughput, ZTF and LSST (incl. a 10,000-alert visit)
	$(UV) run python -m bench.bench_ingest

bench-stream: setup  ## Kafka: alerts/s with 1 and 2 workers, end-to-end latency
	$(UV) run python -m bench.bench_stream

bench-stream-lsst: setup  ## Kafka: the same on LSST alerts (one worker, 3,000-alert backlog, 100 alerts/s paced)
	$(UV) run python -m bench.bench_stream --survey lsst --workers 1 --n 3000 --paced-rate 100

bench-catalog: setup  ## cone search / crossmatch latency, in-process and over gRPC
	$(UV) run python -m bench.bench_catalog

bench-features: setup  ## light-curve feature extraction: objects/s per core, profile
	$(UV) run python -m bench.bench_features

bench-anomaly: setup  ## anomaly score: microseconds per object, batched, one core
	$(UV) run python -m bench.bench_anomaly

bench-lc-latency: setup  ## Kafka: alert -> stored light-curve classification latency
	$(UV) run python -m bench.bench_lc_latency

bench-stamp: setup  ## stamp classifier: inference ms/alert; Kafka: alert -> stored stamp classification
	$(UV) run python -m bench.bench_stamp_latency

bench-gateway: setup  ## GraphQL: object/page query latency at 50 clients over 100,000 objects; subscription delivery latency
	$(UV) run python -m bench.bench_gateway

bench-filters: setup  ## a 10^6-row watchlist and 100 filters: added cost per alert, in memory and in the pipeline
	$(UV) run python -m bench.bench_filters

bench-codec: setup  ## output records: Avro container against the Confluent wire format, per record
	$(UV) run python -m bench.bench_output_codec

kafka: setup  ## start the development Kafka broker on 127.0.0.1:9092 (stop: nightjar dev kafka stop)
	$(UV) run nightjar dev kafka start

clean:
	rm -rf .nightjar .pytest_cache .mypy_cache .ruff_cache
