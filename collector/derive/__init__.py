"""collector.derive."""
