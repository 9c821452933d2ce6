"""Web dashboards: overview, service map, service, mTLS and alerts pages, from `read.queries`."""
