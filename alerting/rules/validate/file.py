"""A whole rules file: `receivers:` and `rules:`, each name defined once, every receiver a
rule names defined in the same file."""

from __future__ import annotations

from alerting.model import Receiver, Rule
from alerting.rules.positions import Node
from alerting.rules.results import RulesFile
from alerting.rules.validate.receiver import ReceiverChecker
from alerting.rules.validate.rule import RuleChecker

TOP_KEYS = ("receivers", "rules")


class Checker(RuleChecker, ReceiverChecker):
    """Every check: a whole file (`rules_file`), one rule or one receiver."""

    def rules_file(self, root: Node, source: str) -> RulesFile:
        if not isinstance(root.value, dict):
            self.error(root, "a rules file is a mapping with `rules:` and `receivers:`")
            return RulesFile(source=source)
        self.unknown_keys(root.value, TOP_KEYS, "the file")
        receivers: list[Receiver] = []
        first_seen: dict[str, Node] = {}
        for item in self.items(root.value.get("receivers"), "receivers"):
            receiver = self.receiver(item, "file")
            name_node = self.name_node(item)
            name = self.plain_text(name_node) if name_node is not None else None
            if name_node is not None and name:
                if name in first_seen:
                    self.error(
                        name_node,
                        f"receiver {name!r} is defined twice "
                        f"(first at line {first_seen[name].line})",
                    )
                    continue
                first_seen[name] = name_node  # even when invalid: rules may still name it
            if receiver is not None:
                receivers.append(receiver)
        rules: list[Rule] = []
        rule_names: dict[str, Node] = {}
        for item in self.items(root.value.get("rules"), "rules"):
            rule = self.rule(item, first_seen, "file")
            name_node = self.name_node(item)
            name = self.plain_text(name_node) if name_node is not None else None
            if name_node is not None and name:
                if name in rule_names:
                    self.error(
                        name_node,
                        f"rule {name!r} is defined twice (first at line {rule_names[name].line})",
                    )
                    continue
                rule_names[name] = name_node
            if rule is not None:
                rules.append(rule)
        return RulesFile(tuple(rules), tuple(receivers), source)
