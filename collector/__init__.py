"""The OTLP collector: receivers (gRPC, HTTP), decoding, and the group-committing writer.

receiver -> decode -> bounded queue -> batcher -> writer (COPY, one transaction per batch) ->
acknowledge the waiting requests after commit. Never imports `api`.
"""
