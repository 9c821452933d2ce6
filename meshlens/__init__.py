"""meshlens kernel: what the collector, the API and the dashboards share.

Settings, the schema and its migrations, partitions, the database (external or embedded) and
the `meshlens` command. Nothing is built at import time.
"""
