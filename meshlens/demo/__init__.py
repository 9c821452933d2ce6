"""`meshlens demo`: a simulated shop mesh fed to a running meshlens through the OpenTelemetry SDK.

- `mesh`: the vocabulary of a simulated mesh (services, operations, the steps they take).
- `topology`: the simulated mesh as data (services, their operations and calls, the database,
  the queue, the external API, the canary, the plaintext edge, the failing dependency).
- `traffic`: turns one request into the spans every service would emit (SDK tracers, explicit
  times, W3C-style parent/child context across services, a span link across the queue);
  `span_attributes`: those spans' attributes; `arrivals`: when requests arrive.
- `utilization`: the CPU utilization gauges meshlens reads for saturation.
- `pipelines`: one SDK TracerProvider and MeterProvider per simulated workload, exporting over
  OTLP/HTTP.
- `command`: the `meshlens demo` flags (into `options`); `run`: the run, after `endpoint`'s
  reachability check; `phases`: the backfill and the live stream; `stop_signal`: Ctrl-C;
  `console`: what the demo prints.

Only `command` is imported by the `meshlens` command; the SDK is imported when the demo runs.
"""
