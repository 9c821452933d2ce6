"""A wire-compatible view of `ExportTraceServiceRequest` that leaves span attributes unparsed.

Decoding attributes into KeyValue objects is most of the CPU of trace ingest. This view is the
same schema with `Span.attributes` declared `repeated bytes` (and `Span.events`, which meshlens
does not store, likewise): protobuf's wire format allows it, since messages and bytes are both
length-delimited. Each attribute then arrives as its serialized KeyValue, which is exactly the
key of `AttributeEncoder`'s fragment cache: no object per attribute, and a parse only on a miss.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_PACKAGE, _LAZY = "opentelemetry.proto", "meshlens.lazy_otlp"
_UNPARSED_SPAN_FIELDS = ("attributes", "events")


def _rename(name: str) -> str:
    return name.replace(_PACKAGE, _LAZY).replace(
        _PACKAGE.replace(".", "/"), _LAZY.replace(".", "/")
    )


def _rename_types(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.type_name:
            field.type_name = _rename(field.type_name)
    for nested in message.nested_type:
        _rename_types(nested)


def _lazy_file(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _rename(proto.name), _rename(proto.package)
    dependencies = [_rename(name) for name in proto.dependency]
    del proto.dependency[:]
    proto.dependency.extend(dependencies)
    for message in proto.message_type:
        _rename_types(message)
        if message.name == "Span":
            for field in message.field:
                if field.name in _UNPARSED_SPAN_FIELDS:
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    field.ClearField("type_name")
    for service in proto.service:
        for method in service.method:
            method.input_type, method.output_type = (
                _rename(method.input_type),
                _rename(method.output_type),
            )
    return proto


@cache
def lazy_trace_request_class() -> Any:
    """The lazy `ExportTraceServiceRequest` message class (built once, on first use)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, trace_pb2, trace_service_pb2):
        pool.Add(_lazy_file(module))
    name = f"{_LAZY}.collector.trace.v1.ExportTraceServiceRequest"
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
