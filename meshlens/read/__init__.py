"""meshlens.read."""
