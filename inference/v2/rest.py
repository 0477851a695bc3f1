"""The Open Inference Protocol over REST (``/v2/...``), with the binary tensor data extension.

Health and server metadata answer anyone (probes); a model's metadata, readiness and inference take the same token,
role and throttle as ``/predict``. Errors are the protocol's ``{"error": message}`` (with MDS's ``code``).

Binary data: with ``Inference-Header-Content-Length: n``, the request's first ``n`` bytes are its JSON and the
rest the data of the inputs whose ``parameters`` hold ``binary_data_size``, in their order. An output asked for with
``parameters: {"binary_data": true}`` (or every output, with the request's ``binary_data_output``) comes back the
same way, its size in its ``binary_data_size``.
"""

import time
import zlib
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpResponse
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.auth import TokenAuthentication
from core.errors import TooLarge, quoted
from core.permissions import requires
from core.request_ids import request_id
from core.tabular import TableError

from ..api_parts import PredictThrottle, body_too_large
from ..apis import _count as count_answer
from ..apis import client_request_id, routing_key
from . import service
from .errors import protocol_error
from .tensors import InputTensor, OutputTensor

HEADER_LENGTH = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"
JSON_RENDERER = JSONRenderer()


class BearerOrTokenAuthentication(TokenAuthentication):
    """MDS's token behind ``Authorization: Token <key>`` or ``Bearer <key>`` (what KServe's clients send)."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer ":
            request.META["HTTP_AUTHORIZATION"] = "Token " + header[7:]
        return super().authenticate(request)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> HttpResponse:
    return HttpResponse(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class ProtocolView(APIView):
    """A V2 endpoint: errors in the protocol's shape, answers rendered here (no DRF renderer runs)."""

    authentication_classes = [BearerOrTokenAuthentication]
    permission_classes = [requires("registry_mirror.predict")]
    throttle_classes = [PredictThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes: list = []
    # Out of the OpenAPI schema: the protocol's own specification describes these routes.
    schema = None

    def perform_content_negotiation(self, request, force=False):
        # Answers are rendered here, always JSON (or binary): DRF's negotiation parses Accept for nothing, ~0.1 ms.
        return JSON_RENDERER, JSON_RENDERER.media_type

    def handle_exception(self, exc):
        error = protocol_error(exc)
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Token"
        return json_response(error.body(), error.status, headers)


class PublicView(ProtocolView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


class ServerMetadataView(PublicView):
    def get(self, request):
        return json_response(service.server_metadata())


class LiveView(PublicView):
    def get(self, request):
        return json_response({"live": True})


class ReadyView(PublicView):
    """Ready once the process answers: a model loads on its first request (or its own ``ready``)."""

    def get(self, request):
        return json_response({"ready": True})


class ModelMetadataView(ProtocolView):
    def get(self, request, name: str, version: str = ""):
        return json_response(service.model_metadata(name, version))


class ModelReadyView(ProtocolView):
    def get(self, request, name: str, version: str = ""):
        loaded = service.model_loaded(name, version)
        return json_response({"name": name, "version": str(loaded.version), "ready": True})


class InferView(ProtocolView):
    def initial(self, request, *args, **kwargs):
        # Before authentication, so a refused request is timed, counted and carries its id too.
        request.started = time.perf_counter()
        request.request_id = request_id()
        request.protocol = "v2-rest"
        request.served, request.rows = None, 0
        super().initial(request, *args, **kwargs)

    def post(self, request, name: str, version: str = ""):
        payload, blob = _read_request(request)
        inputs = _inputs(payload, blob)
        parameters = _object(payload.get("parameters"), "parameters")
        requested, binary = _requested_outputs(payload, parameters)
        client_id = payload.get("id")
        client_id = client_request_id(
            client_id if isinstance(client_id, str) else request.META.get("HTTP_X_REQUEST_ID")
        )
        request.asked = (name, service.version_reference(version), service.asked_format(parameters))
        answer = service.infer(
            name=name,
            version=version,
            inputs=inputs,
            parameters=parameters,
            requested=list(requested) if requested else None,
            request_id=request.request_id,
            caller_id=request.user.pk,
            client_request_id=client_id,
            routing_key=routing_key(request),
        )
        prediction = answer.prediction
        request.served = (prediction.name, str(prediction.version), prediction.model_format)
        request.rows = len(prediction.values)
        body: dict[str, Any] = {
            "model_name": prediction.name,
            "model_version": str(prediction.version),
            "id": str(answer.request_id),
            "parameters": answer.parameters,
        }
        return _answer(body, answer.outputs, requested, binary)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        request_id = getattr(request, "request_id", None)
        if request_id is not None:
            response["X-Request-Id"] = str(request_id)
            count_answer(request, response.status_code)
        return response


def _read_request(request) -> tuple[dict, memoryview]:
    """The request's JSON object and the binary data after it (empty without ``Inference-Header-Content-Length``)."""
    limit = settings.MDS_PREDICT_MAX_BYTES
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise body_too_large(len(raw))
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("gzip", "deflate"):
        raw = _decompressed(raw, encoding, limit)
    elif encoding not in ("", "identity"):
        raise TableError(f"Content-Encoding {quoted(encoding)} is not accepted (gzip, deflate).", code="bad_encoding")
    header_length = request.META.get(HEADER_LENGTH)
    size = len(raw)
    if header_length is not None:
        if not header_length.strip().isdigit() or not 0 < int(header_length) <= len(raw):
            raise TableError(
                f"Inference-Header-Content-Length {quoted(header_length)} is not a size within the body's "
                f"{len(raw)} bytes.",
                code="bad_json",
            )
        size = int(header_length)
    try:
        payload = orjson.loads(memoryview(raw)[:size])
    except orjson.JSONDecodeError as exc:
        raise TableError(f"The request is not JSON: {exc}.", code="bad_json") from exc
    if not isinstance(payload, dict):
        raise TableError("The request must be a JSON object with `inputs`.", code="bad_json")
    return payload, memoryview(raw)[size:]


def _decompressed(raw: bytes, encoding: str, limit: int) -> bytes:
    # gzip's header for gzip, zlib's for deflate (as HTTP's "deflate" is); never more than the body limit.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise TableError(f"The body is not {encoding} data: {exc}.", code="bad_encoding") from exc
    if len(data) > limit:
        raise TooLarge(f"The decompressed body is over {limit} bytes.", extra={"max_bytes": limit})
    return data


def _object(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TableError(f"`{what}` must be a JSON object.", code="bad_json")
    return value


def _inputs(payload: dict, blob: memoryview) -> list[InputTensor]:
    """The request's ``inputs``, each with its data: its JSON ``data`` or its slice of the binary data."""
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise TableError("The request must list its input tensors in `inputs`.", code="invalid_tensor")
    tensors, offset = [], 0
    for index, entry in enumerate(inputs):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TableError(f"Input {index} must be an object with a `name`.", code="invalid_tensor")
        name = entry["name"]
        parameters = _object(entry.get("parameters"), f"inputs[{index}].parameters")
        size = parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= len(blob) - offset:
                raise TableError(
                    f"Tensor {quoted(name)}: binary_data_size {quoted(size)} is past the {len(blob)} bytes of "
                    "binary data after the JSON (Inference-Header-Content-Length).",
                    code="invalid_tensor",
                    extra={"tensor": name},
                )
            data: Any = blob[offset : offset + size]
            offset += size
        elif "data" in entry:
            data = entry["data"]
        else:
            raise TableError(f"Tensor {quoted(name)} has no `data`.", code="invalid_tensor", extra={"tensor": name})
        tensors.append(
            InputTensor(
                name=name,
                datatype=str(entry.get("datatype", "")),
                shape=entry.get("shape"),  # type: ignore[arg-type]  # checked by tensor_values
                data=data,
                parameters=parameters,
            )
        )
    if offset != len(blob):
        raise TableError(
            f"{len(blob) - offset} bytes of binary data belong to no input's binary_data_size.", code="invalid_tensor"
        )
    return tensors


def _requested_outputs(payload: dict, parameters: dict) -> tuple[dict[str, bool], bool]:
    """The outputs asked for, each with whether it is wanted as binary data, and the default for the others."""
    binary_default = parameters.get("binary_data_output") is True
    outputs = payload.get("outputs")
    if outputs is None:
        return {}, binary_default
    if not isinstance(outputs, list):
        raise TableError("`outputs` must be a list of objects with a `name`.", code="bad_json")
    requested = {}
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TableError("`outputs` must be a list of objects with a `name`.", code="bad_json")
        binary = _object(entry.get("parameters"), "outputs[].parameters").get("binary_data", binary_default)
        requested[entry["name"]] = binary is True
    return requested, binary_default


def _answer(body: dict, outputs: list[OutputTensor], requested: dict[str, bool], binary_default: bool) -> HttpResponse:
    blobs: list[bytes] = []
    tensors = []
    for output in outputs:
        tensor: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if requested.get(output.name, binary_default):
            raw = output.raw()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = output.values
        tensors.append(tensor)
    body["outputs"] = tensors
    if not blobs:
        return json_response(body)
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return HttpResponse(
        b"".join((header, *blobs)),
        content_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
