"""Annotation templates: a safe subset of Prometheus' Go templates, parsed once, never eval'd.

`{{ $labels.name }}` (or `.Labels.name`; `index $labels "k8s.pod.name"` for names with dots),
`{{ $value }}` (or `.Value`; empty when the alert has no value), pipelines into `humanize`,
`humanize1024`, `humanizePercentage`, `humanizeDuration` (seconds), `toUpper`, `toLower`,
`title`, `printf "%.2f"`, `default "text"` (for an empty value); calls also written
`humanize $value`. `{{-` and `-}}` trim the whitespace next to them. A missing label is empty.

- `engine`: parsing (`parse_template`, cached) and running a template;
- `functions`: the functions templates may call.
"""

from alerting.templates.engine import Template, TemplateError, parse_template, render_template
from alerting.templates.functions import go_float

__all__ = ["Template", "TemplateError", "go_float", "parse_template", "render_template"]
