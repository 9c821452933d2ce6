"""The read side: the one query layer over the rollups, used by the API, the pages and alerting.

Jaeger's `spanstore.Reader` is the model: reading has a name and one place. What the collector
derived into `service_rollups`, `edge_rollups` and `saturation_rollups` is read here and nowhere
else, and comes back as the dataclasses of `results` (never raw rows):

- `windows`: the `window`, `end` and `step` a request names, and which rollup rows (of which
  resolution) cover them. Pure functions of `now`.
- `rollup_sql`: the statements, summing those rows per key and point in PostgreSQL.
- `queries`: the reads themselves (graph, services, one service, series, mTLS), each taking an
  open connection and a window or series, returning `results`.
- `results`: golden signals, nodes, edges, details, series points, mTLS states.
- `snapshot`: the read-only, one-snapshot connection each answer reads through.

Like the rest of the kernel it imports only the kernel (`meshlens.schema`, `meshlens.signals`,
`meshlens.timeunits`, `meshlens.durations`) and SQLAlchemy: nothing of `collector`, `api`,
`dashboards` or `alerting`, which all read through it.
"""
