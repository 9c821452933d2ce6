"""One receiver: `name`, `type`, `url` (http or https, never echoed: it is a secret) and
`hmac_secret` (webhook receivers only)."""

from __future__ import annotations

from urllib.parse import urlsplit

from alerting.model import Receiver, ReceiverType
from alerting.rules.positions import Node
from alerting.rules.validate.fields import FieldChecker, named

RECEIVER_KEYS = ("name", "type", "url", "hmac_secret")


class ReceiverChecker(FieldChecker):
    """The checks of one receiver."""

    def receiver(self, node: Node, origin: str) -> Receiver | None:
        entries = self.mapping(node, "a receiver")
        if entries is None:
            return None
        before = len(self.problems)
        self.unknown_keys(entries, RECEIVER_KEYS, "a receiver")
        name = self.required_text(node, entries, "name", "a receiver")
        kind = self.required_choice(node, entries, "type", [t.value for t in ReceiverType], name)
        url = self.required_text(node, entries, "url", named("receiver", name))
        if url is not None and "url" in entries:
            self.check_url(entries["url"].value, url)
        secret: str | None = None
        if "hmac_secret" in entries:
            secret = self.text(entries["hmac_secret"].value)
            if secret == "":
                self.error(entries["hmac_secret"].value, "hmac_secret is empty")
            if kind is not None and kind != ReceiverType.WEBHOOK:
                self.error(
                    entries["hmac_secret"].key,
                    f"hmac_secret is for webhook receivers only, not {kind}",
                )
        if len(self.problems) > before or name is None or kind is None or url is None:
            return None
        return Receiver(name, ReceiverType(kind), url, hmac_secret=secret, origin=origin)

    def check_url(self, node: Node, url: str) -> None:
        # never echo the URL: it is a secret
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (a bad port raises)
        except ValueError:
            self.error(node, "url is not a valid URL")
            return
        if parts.scheme not in ("http", "https"):
            self.error(node, "url must start with https:// (or http://)")
        elif not parts.hostname:
            self.error(node, "url has no host")
        elif any(character.isspace() for character in url):
            self.error(node, "url contains white space")
