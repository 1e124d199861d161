"""gRPC: TF Serving's PredictionService and ModelService, as RPC bodies.

Messages come from service/codecs/grpc_protos.py (no TensorFlow import). The server
(grpc_server.py) wraps each body in the dataplane's envelope; errors map to the gRPC codes
TF Serving uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format

from service.codecs import tfserving_requests as messages
from service.codecs.grpc_protos import enum_values, message, service_methods
from service.codecs.tensor_proto import write_tensor
from service.dataplane.call import Call
from service.dataplane.plane import DataPlane
from service.errors import InvalidArgument
from service.models.model_view import ModelView

PROTOCOL = "grpc"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

_STATE = enum_values("tensorflow.serving.ModelVersionStatus.State")
_ERROR_CODE = enum_values("tensorflow.error.Code")
_SignatureDefMap = message("tensorflow.serving.SignatureDefMap")


def _version_choice(spec: Any) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label or None
    return None, None


class TFServingHandlers:
    """The RPC bodies: each decodes its request, calls the dataplane, encodes the answer."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.prediction = service_methods(PREDICTION_SERVICE)
        self.model = service_methods(MODEL_SERVICE)

    def tables(self) -> dict[str, dict[str, tuple[str, Any]]]:
        """Service -> method -> (api label, body; None: answered UNIMPLEMENTED)."""
        return {
            PREDICTION_SERVICE: {
                "Predict": ("predict", self.predict),
                "Classify": ("classify", self.classify),
                "Regress": ("regress", self.regress),
                "GetModelMetadata": ("metadata", self.get_model_metadata),
                "MultiInference": ("multi_inference", None),
            },
            MODEL_SERVICE: {
                "GetModelStatus": ("status", self.get_model_status),
                "HandleReloadConfigRequest": ("reload_config", None),
            },
        }

    @staticmethod
    def _target(spec: Any) -> tuple[str, int | None, str | None]:
        """A ModelSpec's name, version and label."""
        if not spec.name:
            raise InvalidArgument("model_spec.name is empty: name the model")
        return (spec.name, *_version_choice(spec))

    @contextmanager
    def _hold(self, call: Call, spec: Any) -> Iterator[ModelView]:
        with self.plane.hold(call, *self._target(spec)) as model:
            yield model

    @staticmethod
    def _fill_spec(target: Any, model: ModelView, signature_name: str) -> None:
        target.name = model.name
        target.version.value = model.version
        target.signature_name = signature_name

    def predict(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as served:
            model = served.signature_named(request.model_spec.signature_name)
            inputs, wanted = messages.predict_inputs(request, model.signature, self.plane.limits)
            outputs = self.plane.predict(model, inputs, wanted)
            response = self.prediction["Predict"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for name, array in outputs.items():
                write_tensor(response.outputs[name], array)
            return response

    def classify(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as model:
            inputs = messages.example_inputs(
                request, model.signature, "classify", self.plane.limits
            )
            result = self.plane.classify(model, inputs)
            response = self.prediction["Classify"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for row in result:
                classes = response.result.classifications.add().classes
                for label, score in row:
                    entry = classes.add()
                    entry.label, entry.score = label, score
            return response

    def regress(self, request: Any, call: Call) -> Any:
        with self._hold(call, request.model_spec) as model:
            inputs = messages.example_inputs(request, model.signature, "regress", self.plane.limits)
            values = self.plane.regress(model, inputs)
            response = self.prediction["Regress"][1]()
            self._fill_spec(response.model_spec, model, model.signature.name)
            for value in values:
                response.result.regressions.add().value = value
            return response

    def get_model_metadata(self, request: Any, call: Call) -> Any:
        fields = list(request.metadata_field)
        if not fields:
            raise InvalidArgument("metadata_field is empty: ask for 'signature_def'")
        unknown = [f for f in fields if f != "signature_def"]
        if unknown:
            raise InvalidArgument(
                f"metadata field '{unknown[0]}' is not served; the one field is 'signature_def'"
            )
        with self._hold(call, request.model_spec) as model:
            signature_defs = _SignatureDefMap()
            json_format.ParseDict({"signature_def": model.signature_defs}, signature_defs)
            response = self.prediction["GetModelMetadata"][1]()
            self._fill_spec(response.model_spec, model, "")
            response.metadata["signature_def"].Pack(signature_defs)
            return response

    def get_model_status(self, request: Any, call: Call) -> Any:
        found = self.plane.statuses(call, *self._target(request.model_spec))
        response = self.model["GetModelStatus"][1]()
        for status in found:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = _STATE[status.state]
            entry.status.error_code = _ERROR_CODE.get(status.error_code, _ERROR_CODE["UNKNOWN"])
            entry.status.error_message = status.error_message
        return response
