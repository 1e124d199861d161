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
    "PredictRequest": {
        "type": "object",
        "description": "Row format ('instances') or columnar format ('inputs'), not both.",
        "properties": {
            "signature_name": {"type": "string"},
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"description": "a row: a value, or {input name: value}"},
            },
            "inputs": {"description": "a tensor, or {input name: tensor}"},
            "top_k": {
                "type": "integer",
                "minimum": 1,
                "description": "classification models: answer the k best class names and "
                "scores ({'classes': [...], 'scores': [...]} per row) instead of the tensor",
            },
        },
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
    },
    "ExamplesRequest": {
        "type": "object",
        "description": "tf.Example-like features: each feature named like a model input, "
        "its values flattened (one example = one row).",
        "required": ["examples"],
        "properties": {
            "signature_name": {"type": "string"},
            "top_k": {
                "type": "integer",
                "minimum": 1,
                "description": "classify: only the k best classes, best first",
            },
            "context": {
                "type": "object",
                "description": "features shared by every example",
                "additionalProperties": {},
            },
            "examples": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": {"description": "a value or a flat list of values"},
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
                        "type": "array",
                        "prefixItems": [{"type": "string"}, {"type": "number"}],
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
        "additionalProperties": False,
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
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {
                            "enum": [
                                "BOOL",
                                "UINT8",
                                "UINT16",
                                "UINT32",
                                "UINT64",
                                "INT8",
                                "INT16",
                                "INT32",
                                "INT64",
                                "FP16",
                                "FP32",
                                "FP64",
                            ]
                        },
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                        },
                        "data": {"description": "flat (row-major) or nested list of values"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "binary_data": {"type": "boolean"},
                                "classification": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "description": "top-k as BYTES 'value:index:label'",
                                },
                            },
                        },
                    },
                },
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
