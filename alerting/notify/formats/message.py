"""What a receiver format makes: a `Message` to POST, built from a JSON `Payload`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerting.model import Notification

JSON = "application/json"

Payload = dict[str, Any]
Builder = Callable[[Notification, dt.datetime], Payload]
"""A format: the notification (and `now`, for relative times) -> its JSON payload."""


@dataclass(frozen=True, slots=True)
class Message:
    """What to POST: `body` (JSON bytes) with `Content-Type: content_type` plus `headers`."""

    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
