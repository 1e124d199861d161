"""The component schemas of ``/openapi.json`` (service/protocols/openapi.py has the paths)."""

from __future__ import annotations

from typing import Any

NUMBERS = {"description": "a number, or nested lists of numbers"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {"type": "string"}},
    },
    "ModelStatus": {
        "type": "object",
        "required": ["model_version_status", "ready"],
        "properties": {
            "model_version_status": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "state", "status"],
                    "properties": {
                        "version": {"type": "string"},
                        "state": {"enum": ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
                        "status": {
                            "type": "object",
                            "required": ["error_code", "error_message"],
                            "properties": {
                                "error_code": {"type": "string"},
                                "error_message": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "ready": {
                "type": "boolean",
                "description": "a listed version is AVAILABLE (what KServe's V1 client reads)",
            },
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["model_spec", "metadata"],
        "properties": {
            "model_spec": {
                "type": "object",
                "required": ["name", "signature_name", "version"],
                "properties": {
                    "name": {"type": "string"},
                    "signature_name": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "metadata": {
                "type": "object",
                "required": ["signature_def"],
                "properties": {
                    "signature_def": {
                        "type": "object",
                        "required": ["signature_def"],
                        "properties": {"signature_def": {"type": "object"}},
                    }
                },
            },
        },
    },
    "ClassifyResponse": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "description": "per example: [class name, score] for every class",
                "items": {
                    "type": "array",
                    "items": {
                        # [class name, score]; not spelled with prefixItems, which
                        # schemathesis 4.32 rejects in a response schema.
                        "type": "array",
                        "items": {"type": ["string", "number"]},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            }
        },
    },
    "RegressResponse": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": {"type": "number"}}},
    },
    "PredictResponse": {
        "type": "object",
        "oneOf": [
            {"required": ["predictions"], "properties": {"predictions": {"type": "array"}}},
            {"required": ["outputs"], "properties": {"outputs": NUMBERS}},
        ],
    },
    "DriftReport": {
        "type": "object",
        "required": ["method", "threshold", "window", "versions"],
        "properties": {
            "method": {"const": "psi"},
            "threshold": {"type": "number"},
            "window": {"type": "integer", "minimum": 0, "description": "TFSHIP_DRIFT_WINDOW"},
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["model", "version", "window_rows", "inputs", "predictions"],
                    "properties": {
                        "model": {"type": "string"},
                        "version": {"type": "integer"},
                        "window_rows": {"type": "integer", "minimum": 0},
                        "predictions": {"type": ["number", "null"]},
                        "inputs": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["score", "features"],
                                "properties": {
                                    "score": {"type": "number"},
                                    "features": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": [
                                                "feature",
                                                "score",
                                                "values",
                                                "missing_share",
                                            ],
                                            "properties": {
                                                "feature": {"type": "string"},
                                                "score": {"type": "number"},
                                                "values": {"type": "integer", "minimum": 0},
                                                "missing_share": {"type": "number"},
                                                "unseen_share": {"type": "number"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "models"],
        "properties": {
            "ready": {"type": "boolean"},
            "error": {"type": "string"},
            "model_config_error": {"type": "string"},
            "workers": {
                "description": "workers whose models are all available, of those the "
                "server runs (present under gunicorn)",
                "type": "object",
                "required": ["ready", "expected"],
                "properties": {
                    "ready": {"type": "integer", "minimum": 0},
                    "expected": {"type": "integer", "minimum": 1},
                },
            },
            "models": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["runtime", "version_policy", "serving", "versions"],
                    "properties": {
                        "runtime": {"enum": ["onnx", "savedmodel"]},
                        "variant": {"type": "string"},
                        "version_policy": {"type": "string"},
                        "serving": {"type": ["integer", "null"]},
                        "error": {"type": "string"},
                        "versions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["version", "state"],
                                "properties": {
                                    "version": {"type": "integer"},
                                    "state": {"type": "string"},
                                    "error": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "V2Live": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    "V2Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "V2ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "V2IndexRequest": {
        "type": "object",
        "description": "other keys are ignored",
        "properties": {"ready": {"type": "boolean", "description": "only READY versions"}},
    },
    "V2RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"enum": ["READY", "LOADING", "UNLOADING", "UNAVAILABLE"]},
                "reason": {"type": "string"},
            },
        },
    },
    "TritonModelConfig": {
        "type": "object",
        "required": ["name", "platform", "backend", "max_batch_size", "input", "output"],
        "properties": {
            "name": {"type": "string"},
            "platform": {"type": "string"},
            "backend": {"type": "string"},
            "max_batch_size": {"type": "integer", "minimum": 0},
            "input": {"type": "array", "items": {"$ref": "#/components/schemas/TritonTensor"}},
            "output": {"type": "array", "items": {"$ref": "#/components/schemas/TritonTensor"}},
        },
    },
    "TritonStatistics": {
        "type": "object",
        "required": ["model_stats"],
        "properties": {
            "model_stats": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/TritonModelStatistics"},
            }
        },
    },
    "TritonModelStatistics": {
        "type": "object",
        "required": ["name", "version", "inference_count", "execution_count", "inference_stats"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "last_inference": {"type": "integer", "description": "milliseconds since the epoch"},
            "inference_count": {"type": "integer", "minimum": 0},
            "execution_count": {"type": "integer", "minimum": 0},
            "inference_stats": {
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/TritonDuration"},
            },
            "batch_stats": {"type": "array", "items": {"type": "object"}},
        },
    },
    "TritonDuration": {
        "type": "object",
        "required": ["count", "ns"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "ns": {"type": "integer", "minimum": 0},
        },
    },
    "TritonTensor": {
        "type": "object",
        "required": ["name", "data_type", "dims"],
        "properties": {
            "name": {"type": "string"},
            "data_type": {"type": "string"},
            "dims": {"type": "array", "items": {"type": "integer"}},
            "label_filename": {"type": "string"},
            "reshape": {"type": "object"},
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2TensorMetadata"}},
            "outputs": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/V2TensorMetadata"},
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"type": "string"},
                        "datatype": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "data": {"type": "array"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_size": {"type": "integer"}},
                        },
                    },
                },
            },
        },
    },
}
