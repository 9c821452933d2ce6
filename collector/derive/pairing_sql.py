"""The SQL of one pairing pass (`pairing.PairingStore`), statement by statement.

The halves ingest queued this pass are moved into `derive_new`; each match below looks for its
two rows among the new ones and the waiting ones (`edge_halves`): new with new, new with
waiting, waiting with new. What a match consumes goes into `derive_done`; at the end the
consumed waiting rows are deleted and the unconsumed new ones start waiting.
"""

from __future__ import annotations

from collector.derive.halves import (
    CLIENT_SIDE,
    HALF_COLUMNS,
    PROXY_CLIENT_SIDE,
    PROXY_ENTRY_SIDE,
    PROXY_LEG,
    SERVER_SIDE,
)

_HALF = ", ".join(HALF_COLUMNS)
_NEW, _WAITING = "derive_new", "edge_halves"
_MINUTE = "start_unix_nano / 60000000000 * 60"


def _matches(select: str) -> str:
    """`select`, whose two tables are `{a}` and `{b}`, over new x new, new x waiting and
    waiting x new."""
    pairs = ((_NEW, _NEW), (_NEW, _WAITING), (_WAITING, _NEW))
    return "\nUNION ALL\n".join(select.format(a=a, b=b) for a, b in pairs)


def _not_done(alias: str, side: int) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM derive_done d WHERE d.trace_id = {alias}.trace_id"
        f" AND d.span_id = {alias}.span_id AND d.side = {side})"
    )


def _consume(table: str, sides: tuple[int, ...]) -> str:
    return "INSERT INTO derive_done " + " UNION ALL ".join(
        f"SELECT trace_id, span_id, {side}::smallint FROM {table}" for side in sides
    )


SETUP = (
    "CREATE TEMP TABLE IF NOT EXISTS derive_new (LIKE edge_halves_inbox INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_done (trace_id bytea, span_id bytea, side smallint)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_hops (trace_id bytea, span_id bytea, service text,"
    " start_unix_nano bigint, duration_ns bigint, error boolean, mtls smallint, counted boolean,"
    " peer text, peer_type text, proxy_span_id bytea, proxy_service text, proxy_start bigint,"
    " proxy_duration bigint, proxy_error boolean, proxy_mtls smallint, proxy_counted boolean,"
    " proxy_peer text, proxy_peer_type text, proxy_operation text, proxy_version text,"
    " weight integer, unknown_rate boolean, proxy_weight integer, proxy_unknown boolean)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_pairs (trace_id bytea, span_id bytea, source text,"
    " target text, start_unix_nano bigint, duration_ns bigint, error boolean, mtls smallint,"
    " counted boolean, peer text, peer_type text, client_error boolean, client_mtls smallint,"
    " via_span_id bytea, server_start bigint, server_duration bigint, server_mtls smallint,"
    " operation text, version text, server_peer_type text, weight integer,"
    " unknown_rate boolean, server_weight integer, server_unknown boolean)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS derive_nests (trace_id bytea, span_id bytea, service text,"
    " start_unix_nano bigint, duration_ns bigint, error boolean, mtls smallint, operation text,"
    " version text, inner_start bigint, inner_mtls smallint, inner_operation text,"
    " inner_version text, inner_duration bigint, inner_error boolean, weight integer,"
    " unknown_rate boolean, inner_weight integer, inner_unknown boolean) ON COMMIT DELETE ROWS",
)

TAKE_INBOX = (
    "WITH moved AS (DELETE FROM edge_halves_inbox RETURNING *) INSERT INTO derive_new"
    " SELECT * FROM moved",
    "ANALYZE derive_new (trace_id, span_id, side)",
)

# --- hops: an app's client span and the span its sidecar made of the same call -------------
_HOP = (
    "SELECT c.trace_id, c.span_id, c.service, c.start_unix_nano, c.duration_ns,"
    " c.error, c.mtls, c.counted, c.peer, c.peer_type, p.via_span_id, p.service,"
    " p.start_unix_nano, p.duration_ns, p.error, p.mtls, p.counted, p.peer, p.peer_type,"
    " p.operation, p.version, c.weight, c.unknown_rate, p.weight, p.unknown_rate"
    " FROM {a} c JOIN {b} p ON p.trace_id = c.trace_id"
    f" AND p.span_id = c.span_id AND p.side = {PROXY_CLIENT_SIDE}"
    f" WHERE c.side = {CLIENT_SIDE} AND c.peer_type <> '{PROXY_LEG}'"
)
HOPS = (
    "INSERT INTO derive_hops SELECT DISTINCT ON (trace_id, span_id) * FROM ("
    + _matches(_HOP)
    + ") AS hops",
    _consume("derive_hops", (CLIENT_SIDE, PROXY_CLIENT_SIDE)),
    *(
        f"""UPDATE {table} h SET duration_ns = o.duration_ns FROM derive_hops o
        WHERE o.service = o.proxy_service AND h.trace_id = o.trace_id
            AND h.span_id = o.proxy_span_id AND h.side = {CLIENT_SIDE}"""
        for table in (_NEW, _WAITING)
    ),
)
"""Each hop: the app's client half (`c`) met the proxy-client half its sidecar's span left
under it (`p`). The sidecar's call is the one that reaches the server: it takes the app's
duration (what the caller experienced) and the app's half is consumed. When the two belong to
different services, the proxy is a gateway whose one CLIENT span is also its own request."""
HOPS_TAKEN_BACK = f"""
    SELECT {_MINUTE}, service, peer, peer_type, error, mtls, unknown_rate,
        array_agg(duration_ns), array_agg(weight)
    FROM derive_hops WHERE counted GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
"""App client spans that waited alone and counted on their virtual node: taken back."""
HOPS_OF_GATEWAYS = f"""
    SELECT {_MINUTE}, service, duration_ns, mtls, proxy_start / 60000000000 * 60, proxy_service,
        proxy_duration, proxy_error, proxy_mtls, proxy_operation, proxy_version, weight,
        unknown_rate, proxy_weight, proxy_unknown
    FROM derive_hops WHERE service <> proxy_service
"""
HOPS_LATENCY = """
    SELECT proxy_start / 60000000000 * 60, service, proxy_peer, proxy_peer_type,
        array_agg(proxy_duration), array_agg(duration_ns), array_agg(proxy_weight)
    FROM derive_hops WHERE service = proxy_service AND proxy_counted GROUP BY 1, 2, 3, 4
"""
"""Sidecar calls counted with the sidecar's duration before their app's span came: the app's
duration replaces it. (A hop whose sidecar call is not counted yet changes nothing here: the
sidecar's half took the app's duration.)"""

# --- pairs: a client half and a server half under the same span id -------------------------
_PAIR = (
    "SELECT c.trace_id, c.span_id, c.service, s.service, c.start_unix_nano,"
    " c.duration_ns, s.error, CASE WHEN s.mtls <> 0 THEN s.mtls ELSE c.mtls END,"
    " c.counted, c.peer, c.peer_type, c.error, c.mtls, c.via_span_id,"
    " s.start_unix_nano, s.duration_ns, s.mtls, s.operation, s.version, s.peer_type,"
    " c.weight, c.unknown_rate, s.weight, s.unknown_rate"
    " FROM {a} c JOIN {b} s ON s.trace_id = c.trace_id AND s.span_id = c.span_id"
    f" AND s.side = {SERVER_SIDE} WHERE c.side = {CLIENT_SIDE}"
)
PAIRS = (
    "INSERT INTO derive_pairs SELECT DISTINCT ON (trace_id, span_id) * FROM ("
    + _matches(_PAIR)
    + ") AS pairs WHERE "
    + _not_done("pairs", CLIENT_SIDE),
    _consume("derive_pairs", (CLIENT_SIDE, SERVER_SIDE)),
    *(
        f"""UPDATE {table} h SET counted = true, peer = p.target, peer_type = 'service'
        FROM derive_pairs p WHERE p.via_span_id IS NOT NULL AND p.peer_type <> '{PROXY_LEG}'
            AND h.trace_id = p.trace_id AND h.span_id = p.via_span_id
            AND h.side = {PROXY_CLIENT_SIDE}"""
        for table in (_NEW, _WAITING)
    ),
    f"""INSERT INTO derive_new ({_HALF})
        SELECT trace_id, via_span_id, {SERVER_SIDE}, target, server_start, server_duration,
            error, server_mtls, '', '', operation, version, NULL, false, server_weight,
            server_unknown
        FROM derive_pairs
        WHERE peer_type = '{PROXY_LEG}' AND via_span_id IS NOT NULL AND source = target
            AND server_peer_type <> '{PROXY_LEG}'""",
)
"""A pair is one request client -> server with the client's start and duration (what the
caller experienced), the server's error, and the mTLS state by `paired_mtls`. A sidecar's
client half records where its call was counted on its proxy-client half (for a late app span,
see HOPS). A Linkerd proxy's leg to its own app, paired with the app's span, hands that span
on to the proxy's inbound span (its parent) as a server half under it: see NESTS. (Not the
proxy's own outbound SERVER span, whose server half says `proxy`: an uninstrumented app that
forwards the trace context makes its outbound requests children of the leg to it.)"""
PAIRED_EDGES = f"""
    SELECT {_MINUTE}, source, target, error, mtls, unknown_rate, array_agg(duration_ns),
        array_agg(weight)
    FROM derive_pairs WHERE source <> target GROUP BY 1, 2, 3, 4, 5, 6
"""
MOVED = f"""
    SELECT {_MINUTE}, source, peer, peer_type, client_error, client_mtls, unknown_rate,
        array_agg(duration_ns), array_agg(weight)
    FROM derive_pairs WHERE counted GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
"""Client halves counted on their virtual edge before their server half came: taken back."""

# --- nests: a proxy's entry span and its app's entry span of the same request ---------------
_NEST = (
    "SELECT o.trace_id, o.span_id, o.service, o.start_unix_nano, o.duration_ns,"
    " o.error, o.mtls, o.operation, o.version, i.start_unix_nano, i.mtls, i.operation,"
    " i.version, i.duration_ns, i.error, o.weight, o.unknown_rate, i.weight, i.unknown_rate"
    " FROM {a} o JOIN {b} i ON i.trace_id = o.trace_id"
    f" AND i.span_id = o.span_id AND i.side = {SERVER_SIDE} AND i.service = o.service"
    f" WHERE o.side = {PROXY_ENTRY_SIDE}"
)
NESTS = (
    "INSERT INTO derive_nests SELECT DISTINCT ON (trace_id, span_id) * FROM ("
    + _matches(_NEST)
    + ") AS nests WHERE "
    + _not_done("nests", SERVER_SIDE),
    _consume("derive_nests", (PROXY_ENTRY_SIDE, SERVER_SIDE)),
)
NESTS_TAKEN_BACK = f"""
    SELECT {_MINUTE}, service, operation, version, error, mtls, unknown_rate,
        array_agg(duration_ns), array_agg(weight)
    FROM derive_nests GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
"""The sidecars' entry spans whose apps' spans count the request: taken back."""
NESTS_MOVED = """
    SELECT inner_start / 60000000000 * 60, service, inner_operation, inner_version,
        merged_version, inner_mtls, merged_mtls, inner_error, inner_unknown, merged_unknown,
        array_agg(inner_duration), array_agg(inner_weight)
    FROM (
        SELECT *,
            CASE WHEN inner_version = 'unknown' AND version <> 'unknown' THEN version
                 ELSE inner_version END AS merged_version,
            CASE WHEN inner_mtls = 0 THEN mtls ELSE inner_mtls END AS merged_mtls,
            inner_unknown OR unknown_rate AS merged_unknown
        FROM derive_nests
    ) AS n
    WHERE (merged_version, merged_mtls, merged_unknown)
        IS DISTINCT FROM (inner_version, inner_mtls, inner_unknown)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
"""
"""Apps' requests that take what only their sidecar knew: Istio's version label where the app
names none (`span_facts.UNKNOWN_VERSION`), the mTLS state, an unknown sampling rate."""

SETTLE = (
    "ANALYZE derive_done",  # its size decides between a hash and a sorted anti-join below
    "DELETE FROM edge_halves h USING derive_done d"
    " WHERE h.trace_id = d.trace_id AND h.span_id = d.span_id AND h.side = d.side",
    f"INSERT INTO edge_halves ({_HALF}, arrived_at) SELECT {_HALF}, arrived_at FROM derive_new n"
    " WHERE NOT EXISTS"
    " (SELECT 1 FROM derive_done d WHERE d.trace_id = n.trace_id AND d.span_id = n.span_id"
    " AND d.side = n.side) ON CONFLICT DO NOTHING",
)

KNOWN_SERVICES = f"""
    UPDATE edge_halves h SET peer = split_part(h.peer, '.', 1), peer_type = 'service'
    WHERE h.side = {CLIENT_SIDE} AND NOT h.counted AND h.peer_type = 'external'
        AND h.arrived_at < now() - make_interval(secs => %s)
        AND length(h.peer) - length(replace(h.peer, '.', '')) <= 1
        AND EXISTS (SELECT 1 FROM service_rollups s
                    WHERE s.service = split_part(h.peer, '.', 1) AND s.resolution = 3600)
"""
"""A call about to count alone whose peer is an in-mesh name of a service meshlens knows (one
that served requests): `<svc>`, or `<svc>.<ns>` (what is left of `<svc>.<ns>.svc` and
`<svc>.<ns>.svc.cluster.local`), is a call to that service, never to an external node."""

COUNT_DUE = f"""
    WITH due AS (
        UPDATE edge_halves SET counted = true
        WHERE side = {CLIENT_SIDE} AND NOT counted AND peer_type <> '{PROXY_LEG}'
            AND arrived_at < now() - make_interval(secs => %s)
        RETURNING trace_id, via_span_id, start_unix_nano, service, peer, peer_type, error, mtls,
            duration_ns, weight, unknown_rate
    ), proxies AS (
        UPDATE edge_halves h SET counted = true, peer = due.peer, peer_type = due.peer_type
        FROM due WHERE due.via_span_id IS NOT NULL AND h.trace_id = due.trace_id
            AND h.span_id = due.via_span_id AND h.side = {PROXY_CLIENT_SIDE}
    )
    SELECT {_MINUTE}, service, peer, peer_type, error, mtls, unknown_rate, array_agg(duration_ns),
        array_agg(weight)
    FROM due GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
"""Client halves that waited `unpaired_count_after_seconds` without a server half count on the
edge to their virtual node now, and stay until the pairing window ends: a late server half
moves them (MOVED)."""

EXPIRED = f"""
    WITH gone AS (
        DELETE FROM edge_halves WHERE arrived_at < now() - make_interval(secs => %s)
        RETURNING side, counted, start_unix_nano, service, peer, peer_type, error, mtls,
            duration_ns, weight, unknown_rate
    )
    SELECT side, counted, {_MINUTE}, service, peer, peer_type, error, mtls, unknown_rate,
        array_agg(duration_ns), array_agg(weight)
    FROM gone GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""
