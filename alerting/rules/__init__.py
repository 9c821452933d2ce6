"""Alert rules and receivers from YAML (`MESHLENS_RULES_FILE`) or from the API, validated.

Every problem is reported, each with its line and column (1-based; 0 for rules given as JSON
objects, which carry a path such as `metric.aggregation` instead), never just the first. Pure:
no clock, no network; `load_rules_file` and `RulesFileWatcher` read the file.

- `load`: a rules file's text, the file, and the watcher that reloads it when it changes;
- `mappings`: one rule or receiver as a JSON object (the API's bodies), and back;
- `positions`: the tree YAML and JSON become, every node with its line, column and path;
- `validate`: the checks (`fields` shared, `rule`, `receiver`, the whole `file`);
- `results`: `RulesFile`, and `RulesFileError` with every `Problem`.

The format (Prometheus rule files and Alertmanager receivers, flattened)::

    receivers:
      - name: oncall-slack            # unique; rules refer to it by name
        type: slack                   # slack | mattermost | discord | teams | webhook
        url: https://hooks.slack.com/services/T000/B000/XXXX   # a secret: never echoed
      - name: am
        type: webhook                 # Alertmanager webhook payload (version 4)
        url: https://alertmanager-receiver.example/hook
        hmac_secret: s3cret           # optional, webhook only
    rules:
      - name: HighErrorRate           # unique; the alert's `alertname` label
        signal: error_rate            # see SIGNALS below
        scope: service                # mesh | service | edge | version (one alert per instance)
        matchers: {service: checkout} # or ['service=~"check.*"', 'service!=cart']
        condition: "> 0.05"           # quoted (YAML reads a bare `>` as a block scalar);
                                      # or `comparison: ">"` and `threshold: 0.05`; `> 5%` works
        window: 5m                    # default 5m: whole minutes, the signal over this window
        for: 2m                       # default 0: pending this long before firing
        keep_firing_for: 5m           # default 0: firing this long after the condition clears
        min_requests: 100             # default 0: fewer requests in the window: stays quiet
        severity: critical            # critical | warning (default) | info
        labels: {team: shop}          # added to the alert's labels
        annotations:                  # templates (alerting.templates), checked at load
          summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
        receivers: [oncall-slack, am] # names of receivers defined in the same file
        group_by: [alertname, service]   # default [alertname]
        group_wait: 30s               # Alertmanager's defaults: 30s, 5m, 4h
        group_interval: 5m
        repeat_interval: 4h
      - name: HotPods
        signal: metric                # a raw metric: `metric` says which points and how
        metric: {name: k8s.pod.cpu.utilization, matchers: {k8s.namespace.name: shop},
                 aggregation: max}    # sum | avg (default) | min | max | last | rate
        scope: mesh
        condition: "> 0.9"

Rules:

- Signals and their values: `request_rate` (requests/s), `error_rate`, `saturation` and
  `mtls_coverage` (ratios in [0, 1]: thresholds outside are refused; `5%` is 0.05),
  `latency_p50`, `latency_p95`, `latency_p99` (milliseconds, as the API's `latency_ms`;
  `> 300ms` and `> 1.5s` are read as milliseconds too), `plaintext_edges` (a count), `metric`.
- Scope matchers use only the scope's labels (`SCOPE_LABELS`: mesh none, service `service`,
  edge `source` and `target`, version `service` and `version`). A mapping means `=`; strings
  are `name=value`, `name!=value`, `name=~regex`, `name!~regex` (value quotes optional; regexes
  are anchored and must compile). `metric.matchers` match the points' attributes, any name.
- Durations: `30s`, `5m`, `1h30m`, `2d`, `1w`, `0` (whole seconds; `window` whole minutes).
- Labels: names `[a-zA-Z_][a-zA-Z0-9_]*`; `alertname` and `severity` come from `name` and
  `severity`, the scope's labels from the instance, so rules cannot set them. Values are
  plain text (not templates). An unquoted YAML scalar keeps its spelling (`version: 1.10` is
  "1.10", `canary: yes` is "yes").
- Receivers named by a rule must be defined in the same file (the file is checked on its own;
  receivers made through the API are not visible to it).
- `min_requests` is 0 by default for every signal, and refused on `metric` rules (no requests).
- Unknown keys are errors (with a did-you-mean), as are duplicate keys, duplicate rule or
  receiver names, a `url` that is not http(s), `hmac_secret` on a non-webhook receiver, and
  annotations that do not parse. A YAML syntax error stops the parse: it is the one problem.
- An empty file is valid: no rules, no receivers.
"""

from alerting.rules.load import RulesFileWatcher, load_rules_file, load_rules_text
from alerting.rules.mappings import receiver_from_mapping, rule_from_mapping, rule_to_mapping
from alerting.rules.results import Problem, RulesFile, RulesFileError

__all__ = [
    "Problem",
    "RulesFile",
    "RulesFileError",
    "RulesFileWatcher",
    "load_rules_file",
    "load_rules_text",
    "receiver_from_mapping",
    "rule_from_mapping",
    "rule_to_mapping",
]
