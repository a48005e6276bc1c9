"""onexen.v1.TranslatorService: gRPC glue over the pure translator (services.translator.api).

A translation takes a few hundred microseconds of pure CPU, less than a hop to a worker
thread would cost, so it runs inline on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from onexen.runtime.errors import InvalidArgument
from onexen.v1 import translator_pb2, translator_pb2_grpc
from services.translator.api import TranslationError, import_domain, translate

SERVICE_NAME: str = translator_pb2.DESCRIPTOR.services_by_name["TranslatorService"].full_name


class TranslatorServicer(translator_pb2_grpc.TranslatorServiceServicer):
    async def Translate(
        self, request: translator_pb2.TranslateRequest, context: grpc.aio.ServicerContext
    ) -> translator_pb2.TranslateResponse:
        if not request.vm_xml.strip():
            raise InvalidArgument.for_field(
                "vm_xml", "vm_xml is empty: pass the VM XML oned writes to the deployment file"
            )
        try:
            result = translate(request.vm_xml, request.defaults)
        except TranslationError as exc:
            raise exc.to_invalid_argument() from None
        return translator_pb2.TranslateResponse(
            config=result.config,
            warnings=list(result.warnings),
            domain_name=result.domain_name,
            cpu_weight=result.cpu_weight,
        )

    async def Import(
        self, request: translator_pb2.ImportRequest, context: grpc.aio.ServicerContext
    ) -> translator_pb2.ImportResponse:
        if not request.domain_json.strip():
            raise InvalidArgument.for_field(
                "domain_json", "domain_json is empty: pass one domain's object from `xl list -l`"
            )
        try:
            result = import_domain(request.domain_json)
        except TranslationError as exc:
            raise exc.to_invalid_argument() from None
        return translator_pb2.ImportResponse(
            template=result.template, deploy_id=result.deploy_id, warnings=list(result.warnings)
        )


def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
    translator_pb2_grpc.add_TranslatorServiceServicer_to_server(TranslatorServicer(), server)
    return (SERVICE_NAME,)
