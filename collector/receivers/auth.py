"""Bearer tokens on the OTLP receivers (`MESHLENS_INGEST_TOKENS`, `MESHLENS_INGEST_TOKENS_FILE`).

With no token configured every sender is accepted (a laptop on 127.0.0.1). With tokens, a
request must carry `Authorization: Bearer <token>` (an HTTP header, or gRPC metadata); anything
else is refused before its body is read, and nothing of it is stored. Tokens are compared in
constant time, and no message ever repeats one. The file holds one token a line (`#` starts a
comment) and is read again when it changes, at most every `RECHECK_SECONDS`.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from collector.errors import Unauthenticated

RECHECK_SECONDS = 5.0
_SCHEME = "bearer "


class IngestTokens:
    """The tokens a sender may present; `check` refuses everyone else."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = frozenset(token.strip() for token in tokens if token.strip())
        self._file = file
        self._clock = clock
        self._from_file: frozenset[str] = frozenset()
        self._file_state: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        if file is not None:
            self._reload(force=True)

    @property
    def required(self) -> bool:
        """Whether senders must present a token."""
        return bool(self._fixed) or self._file is not None

    def check(self, authorization: str | None) -> None:
        """Accept `authorization` (the header's value) or raise Unauthenticated."""
        if not self.required:
            return
        if not authorization or not authorization[: len(_SCHEME)].lower() == _SCHEME:
            raise Unauthenticated("a bearer token is required: Authorization: Bearer <token>")
        presented = authorization[len(_SCHEME) :].strip().encode()
        self._reload()
        matched = False
        for token in self._fixed | self._from_file:
            matched |= hmac.compare_digest(presented, token.encode())
        if not matched:
            raise Unauthenticated("the bearer token is not one of meshlens's ingest tokens")

    def _reload(self, *, force: bool = False) -> None:
        assert self._file is not None or not force
        if self._file is None:
            return
        now = self._clock()
        if not force and now - self._checked_at < RECHECK_SECONDS:
            return
        self._checked_at = now
        try:
            status = os.stat(self._file)
        except OSError as exc:
            if force:
                raise ValueError(f"ingest token file {self._file}: {exc.strerror}") from exc
            return  # keep the tokens read last; the file may be being replaced
        state = (status.st_mtime_ns, status.st_size)
        if state != self._file_state:
            self._from_file = read_token_file(self._file)
            self._file_state = state


def read_token_file(path: Path) -> frozenset[str]:
    """The tokens of a token file: one a line, blank lines and `#` comments left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    )
