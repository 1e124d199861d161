"""Every call KServe's Python clients make to a model server, run against one: the V1 and V2
REST clients and the gRPC client (``kserve.InferenceRESTClient``, ``InferenceGRPCClient``).

Runs in the kserve client environment (tests/clients/kserve.txt), never in tfship's; the test
reads the JSON it prints. Usage:

    python kserve_calls.py REST_URL GRPC_TARGET MODEL INPUT DATATYPE ROWS_JSON

A call that raises is reported with its error instead of stopping the others.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from kserve import (
    InferenceGRPCClient,
    InferenceRESTClient,
    InferInput,
    InferRequest,
    RESTConfig,
)


async def _record(results: dict[str, Any], name: str, call: Callable[[], Awaitable[Any]]) -> None:
    try:
        results[name] = {"ok": await call()}
    except Exception as exc:  # the test asserts on each call's outcome
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}


def _outputs(response: Any) -> dict[str, list[Any]]:
    return {o.name: o.as_numpy().tolist() for o in response.outputs}


def _request(model: str, name: str, datatype: str, rows: np.ndarray, binary: bool) -> Any:
    tensor = InferInput(name, list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-1")


async def main(
    rest_url: str, grpc_target: str, model: str, name: str, datatype: str, rows: np.ndarray
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=30))
    await _record(results, "v1.is_server_live", lambda: v1.is_server_live(rest_url))
    await _record(results, "v1.is_model_ready", lambda: v1.is_model_ready(rest_url, model))
    await _record(
        results,
        "v1.infer",
        lambda: v1.infer(rest_url, {"instances": rows.tolist()}, model_name=model),
    )
    await _record(results, "v1.is_model_ready(nope)", lambda: v1.is_model_ready(rest_url, "nope"))
    await v1.close()

    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    await _record(results, "v2.is_server_live", lambda: v2.is_server_live(rest_url))
    await _record(results, "v2.is_server_ready", lambda: v2.is_server_ready(rest_url))
    await _record(results, "v2.is_model_ready", lambda: v2.is_model_ready(rest_url, model))
    for binary in (False, True):

        async def infer(binary: bool = binary) -> Any:
            request = _request(model, name, datatype, rows, binary)
            response = await v2.infer(rest_url, request, model_name=model)
            return {"id": response.id, "outputs": _outputs(response)}

        await _record(results, f"v2.infer(binary={binary})", infer)
    await v2.close()

    async with InferenceGRPCClient(grpc_target, timeout=30, retries=0) as grpc_client:
        await _record(results, "grpc.is_server_live", grpc_client.is_server_live)
        await _record(results, "grpc.is_server_ready", grpc_client.is_server_ready)
        await _record(results, "grpc.is_model_ready", lambda: grpc_client.is_model_ready(model))
        for binary in (False, True):

            async def grpc_infer(binary: bool = binary) -> Any:
                response = await grpc_client.infer(_request(model, name, datatype, rows, binary))
                return {
                    "id": response.id,
                    "model_version": response.model_version,
                    "outputs": _outputs(response),
                }

            await _record(results, f"grpc.infer(binary={binary})", grpc_infer)
    return results


if __name__ == "__main__":
    rest_url, grpc_target, model, name, datatype, rows_json = sys.argv[1:7]
    rows = np.asarray(json.loads(rows_json), dtype={"FP32": np.float32}[datatype])
    print(json.dumps(asyncio.run(main(rest_url, grpc_target, model, name, datatype, rows))))
