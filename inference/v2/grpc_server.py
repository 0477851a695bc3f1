"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` beside the inference server's HTTP.

Started in each inference server worker process (``mds_project.inference_wsgi``, when ``INFERENCE_GRPC_BIND`` is
set), so gRPC and REST requests share the process's model cache: a version is held once. Several workers bind the
same port with ``SO_REUSEPORT`` and the kernel spreads connections among them.

A call carries its token in the ``authorization`` metadata (``Token <key>`` or ``Bearer <key>``); model metadata,
readiness and inference take the same role and throttle as ``/predict``; health and server metadata answer anyone.
Errors are gRPC statuses (``STATUS_CODES``) with the message REST would give. Tensors come as ``raw_input_contents``
or typed ``contents`` (a calendar version's ``BYTES`` timestamp: ``bytes_contents``, or raw as each element's
4-byte length then its bytes); outputs always go back as ``raw_output_contents`` (float64, little-endian).
"""

import logging
import threading
import time
from concurrent import futures
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
from django.conf import settings
from django.db import close_old_connections
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, Throttled

from core.request_ids import request_id

from ..api_parts import PredictThrottle
from ..apis import _count as count_answer
from ..apis import client_request_id, routing_key_of
from . import service
from .errors import protocol_error
from .proto import open_inference_pb2 as pb
from .proto import open_inference_pb2_grpc as pb_grpc
from .rest import BearerOrTokenAuthentication
from .tensors import InputTensor

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# The typed field of InferTensorContents that holds each datatype (gRPC's alternative to raw contents).
CONTENTS_FIELDS = {
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
PERMISSION = "registry_mirror.predict"


def _parameters(parameters) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
        for key, value in parameters.items()
    }


def _parameter(value: Any) -> pb.InferParameter:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    return pb.InferParameter(string_param=str(value))


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**service.server_metadata())

    def ModelReady(self, request, context):
        return self._answer(context, lambda user, metadata: self._ready(request))

    def ModelMetadata(self, request, context):
        return self._answer(context, lambda user, metadata: self._metadata(request))

    def ModelInfer(self, request, context):
        # What _count reads (as on a REST request), and the answer's status as HTTP would give it.
        asked = SimpleNamespace(
            started=time.perf_counter(),
            protocol="v2-grpc",
            served=None,
            rows=0,
            asked=None,
            request_id=request_id(),
            status=200,
        )
        try:
            return self._answer(
                context, lambda user, metadata: self._infer(request, context, user, metadata, asked), asked
            )
        finally:
            count_answer(asked, asked.status)

    def _answer(self, context, handler, asked=None):
        """``handler(user, metadata)`` for an authenticated, permitted, throttled caller (the call's metadata read
        once); an error as its gRPC status."""
        try:
            metadata = dict(context.invocation_metadata())
            return handler(self._caller(metadata), metadata)
        except Exception as exc:
            error = protocol_error(exc)
            if asked is not None:
                asked.status = error.status
            # Raises: the call ends with this status and message (and nothing is logged as a server fault).
            context.abort(STATUS_CODES.get(error.status, grpc.StatusCode.INTERNAL), error.message)
        finally:
            # Django closes a request's connection when it ends; a gRPC thread has no request to end.
            close_old_connections()

    def _caller(self, metadata: dict):
        header = metadata.get("authorization", "")
        scheme, _, key = str(header).strip().partition(" ")
        if scheme.lower() not in ("token", "bearer") or not key.strip():
            raise NotAuthenticated()
        user, _ = BearerOrTokenAuthentication().authenticate_credentials(key.strip().encode())
        if not user.has_perms((PERMISSION,)):
            raise PermissionDenied(f"Your role does not allow this (it needs {PERMISSION}).")
        throttle = PredictThrottle()
        if not throttle.allow_request(SimpleNamespace(user=user, META={}), None):
            raise Throttled(throttle.wait())
        return user

    def _ready(self, request):
        service.model_loaded(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    def _metadata(self, request):
        metadata = service.model_metadata(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**entry) for entry in metadata["inputs"]],
            outputs=[tensor(**entry) for entry in metadata["outputs"]],
        )

    def _infer(self, request, context, user, metadata, asked):
        parameters = _parameters(request.parameters)
        asked.asked = (
            request.model_name,
            service.version_reference(request.model_version),
            service.asked_format(parameters),
        )
        answer = service.infer(
            name=request.model_name,
            version=request.model_version,
            inputs=_inputs(request),
            parameters=parameters,
            requested=[output.name for output in request.outputs] or None,
            request_id=asked.request_id,
            caller_id=user.pk,
            client_request_id=client_request_id(request.id),
            # As /predict's X-Routing-Key: what keeps a caller on one side of a canary trial.
            routing_key=routing_key_of(str(metadata.get("x-routing-key", "")), user, context.peer()),
        )
        prediction = answer.prediction
        asked.served = (prediction.name, str(prediction.version), prediction.model_format)
        asked.rows = len(prediction.values)
        return pb.ModelInferResponse(
            model_name=prediction.name,
            model_version=str(prediction.version),
            id=str(answer.request_id),
            parameters={key: _parameter(value) for key, value in answer.parameters.items()},
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(name=output.name, datatype=output.datatype, shape=output.shape)
                for output in answer.outputs
            ],
            raw_output_contents=[output.raw() for output in answer.outputs],
        )


def _inputs(request) -> list[InputTensor]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        from core.tabular import TableError

        raise TableError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: give one per input.",
            code="invalid_tensor",
        )
    tensors = []
    for index, tensor in enumerate(request.inputs):
        if raw:
            data: Any = raw[index]
        elif tensor.datatype == "BYTES":
            data = list(tensor.contents.bytes_contents)
        else:
            field = CONTENTS_FIELDS.get(tensor.datatype)
            data = np.asarray(getattr(tensor.contents, field)) if field else []
        tensors.append(InputTensor(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape), data=data))
    return tensors


_server: grpc.Server | None = None
_server_lock = threading.Lock()


def grpc_server_start(bind: str, *, threads: int = 8) -> grpc.Server | None:
    """Serve the protocol on ``bind`` (``host:port``) from this process, once; ``None`` when ``bind`` is empty.

    Raises:
        RuntimeError: the address cannot be bound (in use without ``SO_REUSEPORT``, or not this machine's).
    """
    global _server
    if not bind:
        return None
    with _server_lock:
        if _server is not None:
            return _server
        limit = settings.MDS_PREDICT_MAX_BYTES
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc-inference"),
            options=[
                # Several worker processes on one port: the kernel spreads the connections.
                ("grpc.so_reuseport", 1),
                # gRPC's default is 4 MB; a request may be as large as a /predict body.
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", -1),
            ],
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(), server)
        try:
            port = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise RuntimeError(f"Could not serve gRPC on {bind}: {exc}") from exc
        if not port:
            raise RuntimeError(f"Could not serve gRPC on {bind}.")
        server.start()
        logger.info("Open Inference Protocol gRPC on %s", bind)
        _server = server
        return server
