"""The OTLP collector: receive -> decode -> write, and derive.

- `receivers/`: OTLP/HTTP and OTLP/gRPC, ingest tokens, the body budget; thin: decode, hand
  on, map the error (`errors`).
- `decode/`: OTLP protobuf and JSON into rows (`rows`), inline or in worker processes (`pool`).
- `ingest`: `OtlpIngest`, the one seam the receivers call; `pipeline`: bounded queue ->
  batcher -> `writer` (COPY, one transaction per batch) -> acknowledge after commit.
- `derive/`: every rule that turns telemetry into a number, at ingest and in the deriver.
Never imports `api`.
"""
