"""`meshlens demo`: a simulated shop mesh fed to a running meshlens through the OpenTelemetry SDK.

- `mesh`: the vocabulary of a simulated mesh (services, operations, the steps they take, the
  proxy in front of each service, the ingress gateway).
- `topology`: the simulated mesh as data (services, their operations and calls, the database,
  the queue, the external API, the canary, the plaintext edge, the failing dependency, which
  services run on Istio and which on Linkerd).
- `traffic`: turns one request into the spans every service would emit (SDK tracers, explicit
  times, W3C-style parent/child context across services, a span link across the queue);
  `span_attributes`: those spans' attributes; `arrivals`: when requests arrive.
- `hops`: the spans of the proxies between the apps' spans (Istio sidecars and ingress
  gateway, Linkerd proxies), with ids and times; `pods`: the pods and the proxy beside each.
- `proxy_span`, `envoy_spans`, `linkerd_spans`: the shapes of proxy spans, taken from Envoy's,
  Istio's and linkerd2-proxy's sources; plain data, shared with the ingest benchmark.
- `istio_metrics`, `linkerd_metrics`: the label sets of the proxies' request metrics, from the
  same sources; `prometheus_scrape`: what a Collector's `prometheus` receiver makes of a
  scrape; `hop_metrics`: which proxy counts which request of a hop; `proxy_metrics`: the
  proxies' cumulative series and their rounds of scrapes; `scrape_sender`: sends the rounds.
- `utilization`: the CPU utilization gauges meshlens reads for saturation.
- `pipelines`: one SDK TracerProvider and MeterProvider per simulated workload, one span
  pipeline per proxy, and the proxies' scrapes, exporting over OTLP/HTTP.
- `command`: the `meshlens demo` flags (into `options`); `run`: the run, after `endpoint`'s
  reachability check; `phases`: the backfill and the live stream; `stop_signal`: Ctrl-C;
  `console`: what the demo prints.

Only `command` is imported by the `meshlens` command; the SDK is imported when the demo runs.
"""
