"""Web dashboards (plotly), built from the same query layer as the API. Arrives with issue 4."""
