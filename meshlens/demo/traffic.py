"""Simulated requests, emitted as the spans each service's own SDK tracer would record.

A request is worked out depth first with explicit times, so no span needs a real sleep: a
SERVER span starts, its calls run one after another (or fan out together), then it ends. A
call between services is a CLIENT span in the caller and a SERVER span in the callee, with
the spans of the proxies on the way between them (`hops`: Istio sidecars, Linkerd proxies,
the ingress gateway in front of every request), each the parent of the next, in one trace
as a W3C `traceparent` header would carry it; the span context is passed explicitly
(`context=`), so spans of different TracerProviders nest.
A message to Kafka is a PRODUCER span (`create`) and a CLIENT span to the broker (`send`);
the consumer polls the broker (CLIENT, `receive`) and processes the message in a CONSUMER
span of a new trace, linked to the PRODUCER span. The spans' attributes come from
`span_attributes`; request start times from `arrivals`.

Every random choice comes from one `random.Random`, so a seed repeats the traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)

from meshlens.demo import span_attributes as attrs
from meshlens.demo.hops import Answer, Hops, ProxyExport
from meshlens.demo.mesh import (
    Consumer,
    ExternalCall,
    Latency,
    Mesh,
    Operation,
    Publish,
    Query,
    Service,
    ServiceCall,
    Step,
    Version,
)
from meshlens.demo.span_attributes import Attributes, set_http_status

NANOS_PER_MS = 1_000_000
DATABASE_ERROR_RATE = 0.0005

TracerFor = Callable[[str, str], Tracer]
"""The tracer of a workload: (service name, version name) -> its SDK tracer."""


class Traffic:
    """Generates requests through the simulated mesh."""

    def __init__(
        self, mesh: Mesh, tracer_for: TracerFor, proxies: ProxyExport, rng: random.Random
    ) -> None:
        self.mesh = mesh
        self._tracer_for = tracer_for
        self._hops = Hops(mesh, proxies, rng)
        self._rng = rng
        self._entry = mesh.services[mesh.entry_service]
        self._mix = [self._entry.operations[name] for name, _ in mesh.entry_mix]
        self._mix_weights = [weight for _, weight in mesh.entry_mix]
        self.requests = 0
        self._app_spans = 0

    @property
    def spans(self) -> int:
        """Spans emitted so far, the apps' and the proxies'."""
        return self._app_spans + self._hops.spans

    # --- requests ---------------------------------------------------------------------

    def request(self, start_ns: int) -> Answer:
        """One request of the virtual client `user`, arriving at the entry service."""
        operation = self._rng.choices(self._mix, self._mix_weights)[0]
        self.requests += 1
        entry, path = self._entry, self._path(operation)
        version = self._version(entry)
        return self._hops.enter(
            entry,
            version,
            operation.method,
            path,
            start_ns,
            lambda parent, at: self._serve(entry, version, operation, parent, at, None, path),
        )

    def _serve(
        self,
        service: Service,
        version: Version,
        operation: Operation,
        parent: Context,
        start: int,
        caller: Service | None,
        path: str,
    ) -> Answer:
        attributes = attrs.served(operation, service, path)
        if caller is not None:
            attributes.update(attrs.connection(caller, service))
        elif self.mesh.gateway is not None:  # the ingress gateway's Envoy called it
            attributes.update(attrs.from_gateway(self.mesh.gateway, service))
        span = self._start(
            service, version, operation.name, parent, SpanKind.SERVER, start, attributes
        )
        own = self._latency(operation.latency, version.latency_factor)
        before = own * 2 // 5
        if self._chance(operation.not_found_rate):
            done, status = start + before, 404
        else:
            done, status = self._steps(service, version, operation.steps, span, start + before)
        if status < 400 and self._chance(operation.error_rate + version.extra_error_rate):
            status = 500
        end = done + own - before
        set_http_status(span, status, client=False)
        span.end(end_time=end)
        return Answer(end, status)

    def _steps(
        self, service: Service, version: Version, steps: tuple[Step, ...], span: Span, at: int
    ) -> tuple[int, int]:
        """Run `steps` from `at`; (when they are all done, the caller's status so far)."""
        context = set_span_in_context(span)
        group_start = group_end = at
        for step in steps:
            if not self._chance(step.probability):
                continue
            if not step.parallel:
                group_start = group_end
            answer = self._step(service, version, step, context, group_start)
            group_end = max(group_end, answer.end)
            if step.critical and answer.status >= 400:  # the caller gives up and says why
                return group_end, 502 if answer.status >= 500 else answer.status
        return group_end, 200

    def _step(
        self, service: Service, version: Version, step: Step, context: Context, at: int
    ) -> Answer:
        if isinstance(step, ServiceCall):
            return self._call(service, version, step, context, at)
        if isinstance(step, Query):
            return self._query(service, version, step, context, at)
        if isinstance(step, ExternalCall):
            return self._external(service, version, step, context, at)
        return self._publish(service, version, step, context, at)

    # --- calls ------------------------------------------------------------------------

    def _call(
        self, caller: Service, version: Version, call: ServiceCall, context: Context, at: int
    ) -> Answer:
        callee = self.mesh.services[call.service]
        operation = callee.operations[call.operation]
        path = self._path(operation)
        attributes = attrs.service_call(caller, operation, callee, path)
        span = self._start(
            caller, version, operation.name, context, SpanKind.CLIENT, at, attributes
        )
        callee_version = self._version(callee)
        answer = self._hops.call(
            caller,
            version,
            callee,
            callee_version,
            operation.method,
            path,
            span.get_span_context(),
            at,
            lambda parent, start: self._serve(
                callee, callee_version, operation, parent, start, caller, path
            ),
        )
        set_http_status(span, answer.status, client=True)
        span.end(end_time=answer.end)
        return answer

    def _query(
        self, caller: Service, version: Version, query: Query, context: Context, at: int
    ) -> Answer:
        attributes = attrs.database_query(caller, self.mesh, query)
        name = f"{query.operation} {query.table}"
        span = self._start(caller, version, name, context, SpanKind.CLIENT, at, attributes)
        end = at + self._latency(query.latency)
        status = 200
        if self._chance(DATABASE_ERROR_RATE):
            status = 500
            span.set_attributes({"db.response.status_code": "57014", "error.type": "57014"})
            span.set_status(Status(StatusCode.ERROR, "canceling statement due to timeout"))
        span.end(end_time=end)
        return Answer(end, status)

    def _external(
        self, caller: Service, version: Version, call: ExternalCall, context: Context, at: int
    ) -> Answer:
        status, end = 0, at
        for attempt in range(call.retries + 1):
            attributes = attrs.external_call(call, attempt)
            name = f"{call.method} {call.path}"
            span = self._start(caller, version, name, context, SpanKind.CLIENT, at, attributes)
            failed = self._chance(call.error_rate)
            status = 503 if failed else 200
            end = at + self._latency(call.latency, 0.4 if failed else 1.0)
            set_http_status(span, status, client=True)
            span.end(end_time=end)
            if not failed:
                break
            at = end + int(self._rng.uniform(40, 80) * NANOS_PER_MS * 2**attempt)  # backoff
        return Answer(end, status)

    def _publish(
        self, producer: Service, version: Version, publish: Publish, context: Context, at: int
    ) -> Answer:
        mesh = self.mesh
        topic = publish.topic
        creating = attrs.messaging(mesh, topic, "create", "send")
        create = self._start(
            producer, version, f"create {topic}", context, SpanKind.PRODUCER, at, creating
        )
        created = at + self._latency(Latency(0.15, 0.3))
        create.end(end_time=created)
        sending: Attributes = {
            **attrs.messaging(mesh, topic, "send", "send"),
            "messaging.batch.message_count": 1,
            **attrs.to_broker(producer, mesh),
        }
        send = self._start(
            producer, version, f"send {topic}", context, SpanKind.CLIENT, created, sending
        )
        sent = created + self._latency(Latency(3, 0.5))  # acks=all
        send.end(end_time=sent)
        consumer = mesh.consumer_of(topic)
        if consumer is not None:
            lag = self._latency(Latency(8, 0.8))
            self._consume(consumer, create.get_span_context(), sent + lag)
        return Answer(sent, 200)

    def _consume(self, consumer: Consumer, message: SpanContext, at: int) -> None:
        """The consumer polls the broker, then processes the message in a trace of its own."""
        mesh = self.mesh
        service = mesh.services[consumer.service]
        version = self._version(service)
        topic, group = consumer.topic, service.name
        polling: Attributes = {
            **attrs.messaging(mesh, topic, "receive", "poll", group=group),
            **attrs.to_broker(service, mesh),
        }
        poll = self._start(
            service, version, f"poll {topic}", Context(), SpanKind.CLIENT, at, polling
        )
        polled = at + self._latency(Latency(1.5, 0.5))
        poll.end(end_time=polled)
        start = polled + self._latency(Latency(0.1, 0.3))
        processing: Attributes = {
            **attrs.messaging(mesh, topic, "process", "process", group=group),
            # the message came over the consumer's connection to the broker
            **attrs.tls_to(service, mesh.broker),
        }
        process = self._start(
            service,
            version,
            f"process {topic}",
            Context(),
            SpanKind.CONSUMER,
            start,
            processing,
            links=[Link(message)],
        )
        own = self._latency(consumer.latency, version.latency_factor)
        before = own // 2
        done, status = self._steps(service, version, consumer.steps, process, start + before)
        if status < 400 and self._chance(consumer.error_rate + version.extra_error_rate):
            status = 500
        if status >= 400:
            process.set_attribute("error.type", "ProcessingError")
            process.set_status(Status(StatusCode.ERROR, "could not process the order"))
        process.end(end_time=done + own - before)

    # --- helpers ----------------------------------------------------------------------

    def _start(
        self,
        service: Service,
        version: Version,
        name: str,
        context: Context,
        kind: SpanKind,
        at: int,
        attributes: Attributes,
        links: list[Link] | None = None,
    ) -> Span:
        self._app_spans += 1
        tracer = self._tracer_for(service.name, version.name)
        return tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=at
        )

    def _version(self, service: Service) -> Version:
        versions = service.versions
        if len(versions) == 1:
            return versions[0]
        return self._rng.choices(versions, [v.weight for v in versions])[0]

    def _path(self, operation: Operation) -> str:
        """The route with its parameters filled in: /api/products/{id} -> /api/products/1234."""
        parts = operation.route.split("/")
        return "/".join(
            str(self._rng.randrange(1000, 10000)) if part.startswith("{") else part
            for part in parts
        )

    def _latency(self, latency: Latency, factor: float = 1.0) -> int:
        """A lognormal draw, in nanoseconds."""
        ms = self._rng.lognormvariate(math.log(latency.median_ms * factor), latency.sigma)
        return max(1, int(ms * NANOS_PER_MS))

    def _chance(self, probability: float) -> bool:
        if probability <= 0:
            return False
        return probability >= 1 or self._rng.random() < probability
