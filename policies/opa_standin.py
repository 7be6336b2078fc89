"""A small stand-in for an OPA server, for tests and demos where no OPA binary exists.

It speaks the part of OPA's REST API that ``opa-python-client`` uses: the Policy API
(``PUT``/``GET``/``DELETE /v1/policies/{id}``, ``GET /v1/policies``) and the Data API
(``PUT``/``GET``/``PATCH``/``DELETE /v1/data/{path}``, ``POST /v1/data/{path}`` with
``{"input": ...}`` answering ``{"result": ...}``), and evaluates with the embedded engine.
It listens on a real socket, so the OPA engine is exercised over real HTTP.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from policies._regorus import RegorusEngine
from policies.bundle import Bundle
from policies.errors import EngineError

__all__ = ["OpaStandin", "create_standin_app"]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self._engine: RegorusEngine | None = None

    def engine(self) -> RegorusEngine:
        if self._engine is None:
            bundle = Bundle(modules=dict(self.policies), tests={}, data=self.data, digest="standin")
            self._engine = RegorusEngine(bundle)
        return self._engine

    def changed(self) -> None:
        self._engine = None

    def set_path(self, parts: list[str], value: Any) -> None:
        if not parts:
            if not isinstance(value, dict):
                raise TypeError("the root document must be an object")
            self.data = value
            return
        node = self.data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TypeError(f"{part} is not an object")
            node = child
        node[parts[-1]] = value

    def get_path(self, parts: list[str]) -> tuple[bool, Any]:
        node: Any = self.data
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return False, None
            node = node[part]
        return True, node


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _as_json(value: Any) -> Any:
    """``value`` as OPA writes it: a set (the value of a partial set rule) is an array."""
    if isinstance(value, set | frozenset):
        items = [_as_json(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    return value


def create_standin_app() -> FastAPI:
    """The stand-in's ASGI application, with an empty store."""
    app = FastAPI(title="OPA stand-in")
    store = _Store()
    _policy_routes(app, store)
    _data_routes(app, store)
    return app


def _policy_routes(app: FastAPI, store: _Store) -> None:

    @app.get("/v1/policies")
    @app.get("/v1/policies/")
    def list_policies() -> dict[str, Any]:
        with store.lock:
            return {"result": [{"id": k, "raw": v} for k, v in sorted(store.policies.items())]}

    @app.put("/v1/policies/{policy_id:path}")
    async def put_policy(policy_id: str, request: Request) -> Response:
        source = (await request.body()).decode("utf-8", errors="replace")
        with store.lock:
            trial = {**store.policies, policy_id: source}
            try:
                RegorusEngine(Bundle(modules=trial, tests={}, data=store.data, digest="trial"))
            except EngineError as exc:
                return _error(400, "invalid_parameter", exc.detail)
            store.policies = trial
            store.changed()
        return JSONResponse({})

    @app.get("/v1/policies/{policy_id:path}")
    def get_policy(policy_id: str) -> Response:
        with store.lock:
            if policy_id not in store.policies:
                return _error(
                    404, "resource_not_found", f"storage_policy_not_found_error: {policy_id}"
                )
            return JSONResponse({"result": {"id": policy_id, "raw": store.policies[policy_id]}})

    @app.delete("/v1/policies/{policy_id:path}")
    def delete_policy(policy_id: str) -> Response:
        with store.lock:
            if store.policies.pop(policy_id, None) is None:
                return _error(
                    404, "resource_not_found", f"storage_policy_not_found_error: {policy_id}"
                )
            store.changed()
        return JSONResponse({})


def _data_routes(app: FastAPI, store: _Store) -> None:
    @app.put("/v1/data/{path:path}")
    async def put_data(path: str, request: Request) -> Response:
        try:
            value = await request.json()
            with store.lock:
                store.set_path(_parts(path), value)
                store.changed()
        except (ValueError, TypeError) as exc:
            return _error(400, "invalid_parameter", str(exc))
        return Response(status_code=204)

    @app.patch("/v1/data/{path:path}")
    async def patch_data(path: str, request: Request) -> Response:
        patches = await request.json()
        if not isinstance(patches, list):
            return _error(400, "invalid_parameter", "a JSON Patch must be a list of operations")
        with store.lock:
            for op in patches:
                target = _parts(path) + _parts(str(op.get("path", "")))
                if op.get("op") in {"add", "replace"}:
                    try:
                        store.set_path(target, copy.deepcopy(op.get("value")))
                    except TypeError as exc:
                        return _error(400, "invalid_parameter", str(exc))
                elif op.get("op") == "remove":
                    found, parent = store.get_path(target[:-1])
                    if not found or not isinstance(parent, dict) or target[-1] not in parent:
                        return _error(404, "resource_not_found", f"{'/'.join(target)} not found")
                    del parent[target[-1]]
                else:
                    return _error(400, "invalid_parameter", f"unsupported op {op.get('op')!r}")
            store.changed()
        return Response(status_code=204)

    @app.delete("/v1/data/{path:path}")
    def delete_data(path: str) -> Response:
        target = _parts(path)
        with store.lock:
            found, parent = store.get_path(target[:-1])
            if not target or not found or not isinstance(parent, dict) or target[-1] not in parent:
                return _error(404, "resource_not_found", f"{path} not found")
            del parent[target[-1]]
            store.changed()
        return Response(status_code=204)

    @app.get("/v1/data/{path:path}")
    def get_data(path: str) -> Response:
        with store.lock:
            found, value = store.get_path(_parts(path))
        return JSONResponse({"result": value} if found else {})

    @app.post("/v1/data/{path:path}")
    async def query(path: str, request: Request) -> Response:
        body = await request.json()
        document = body.get("input") if isinstance(body, dict) else None
        with store.lock:
            try:
                value = store.engine().evaluate(".".join(_parts(path)), document)
            except EngineError as exc:
                if "not a valid rule path" not in exc.detail:
                    return _error(500, "internal_error", exc.detail)
                # Like OPA: a path no rule defines answers with its data, or undefined.
                _, value = store.get_path(_parts(path))
        return JSONResponse({} if value is None else {"result": _as_json(value)})


class OpaStandin:
    """Runs the stand-in on 127.0.0.1 in a background thread: ``with OpaStandin() as s:``."""

    def __init__(self, port: int = 0) -> None:
        # No logging setup of uvicorn's own: it would give its loggers handlers and levels
        # outside this process's configuration (and its redaction), for every server in
        # the process.
        config = uvicorn.Config(
            create_standin_app(), host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> OpaStandin:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OPA stand-in did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
