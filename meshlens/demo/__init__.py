"""`meshlens demo`: a simulated shop mesh fed to a running meshlens through the OpenTelemetry SDK.

- `topology`: the simulated mesh as data (services, their operations and calls, the database,
  the queue, the external API, the canary, the plaintext edge, the failing dependency).
- `traffic`: turns one request into the spans every service would emit (SDK tracers, explicit
  times, W3C-style parent/child context across services, a span link across the queue).
- `utilization`: the CPU utilization gauges meshlens reads for saturation.
- `pipelines`: one SDK TracerProvider and MeterProvider per simulated workload, exporting over
  OTLP/HTTP.
- `command`: the `meshlens demo` flags, the reachability check and the run loop.

Only `command` is imported by the `meshlens` command; it imports the SDK when the demo runs.
"""
