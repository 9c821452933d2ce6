"""Running `meshlens demo` from the tests: its command line and environment."""

from __future__ import annotations

import os
import sys

from tests.support import RunningServer


def demo_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "meshlens.cli", "demo", *flags]


def demo_environment(server: RunningServer | None = None) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHLENS_")}
    if server is not None:
        environment["MESHLENS_HTTP_PORT"] = str(server.web_port)
    return environment
