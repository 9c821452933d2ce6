"""The derive stage: every rule that turns telemetry into a number lives here, and nowhere else.

At ingest, in the writer's transaction (fast, per batch):
- `classify`: per-span rules (errors per side, proxy attribution, virtual peers, mTLS states,
  operation, version), pure; `span_facts`: a span classified once while it is decoded;
- `batch`: one batch's service signals, edges known at once and halves left to pair;
- `pairing`: the pairing vocabulary (upsert a half, pair, expire), in the batch and in
  PostgreSQL;
- `mesh_metrics` and `saturation`: which Istio / Linkerd series describe an edge, which gauges
  measure utilization; `at_ingest`: the inbox rows a written batch queues for the deriver.
In the deriver (`loop`, every few seconds, one transaction, one process at a time):
- `pairing`, `cumulative` (cumulative readings into deltas), `metric_fold`, `rollup_fold`
  (minute, 10-minute and hour rollups), `cardinality` and `cardinality_store` (the budget of
  names: past a cap, `meshlens.overflow`);
- `retention`: partitions ahead and behind, rollups and cursors past their time.
Pure modules import neither SQLAlchemy nor FastAPI and take time as an argument.
"""
