"""onexen.v1.TranslatorService: OpenNebula VM XML <-> xl domain config.

Only the input checks exist yet; the translation itself is a later issue.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from onexen.runtime.errors import InvalidArgument, Unimplemented
from onexen.v1 import translator_pb2, translator_pb2_grpc

SERVICE_NAME: str = translator_pb2.DESCRIPTOR.services_by_name["TranslatorService"].full_name


class TranslatorServicer(translator_pb2_grpc.TranslatorServiceServicer):
    async def Translate(
        self, request: translator_pb2.TranslateRequest, context: grpc.aio.ServicerContext
    ) -> translator_pb2.TranslateResponse:
        if not request.vm_xml.strip():
            raise InvalidArgument.for_field(
                "vm_xml", "vm_xml is empty: pass the VM XML oned writes to the deployment file"
            )
        raise Unimplemented(
            "Translate is not built yet: the VM XML to xl.cfg translation comes in a later issue"
        )

    async def Import(
        self, request: translator_pb2.ImportRequest, context: grpc.aio.ServicerContext
    ) -> translator_pb2.ImportResponse:
        if not request.domain_json.strip():
            raise InvalidArgument.for_field(
                "domain_json", "domain_json is empty: pass one domain's object from `xl list -l`"
            )
        raise Unimplemented(
            "Import is not built yet: the xl JSON to OpenNebula template import comes in a later issue"
        )


def add_to_server(server: grpc.aio.Server) -> Sequence[str]:
    translator_pb2_grpc.add_TranslatorServiceServicer_to_server(TranslatorServicer(), server)
    return (SERVICE_NAME,)
