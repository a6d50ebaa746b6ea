"""The ASGI app (Starlette): every pipeline route, the state, health and metrics endpoints.

Errors are answered, never raised at the client: malformed JSON is 400, a body over the limit
413, a request a pipeline cannot use 422 (each problem with its `$.path`), an unknown route,
model or cohort 404, the ledger unreachable 503 on the state endpoints; anything unexpected is
a 500 with an id to find it in the server's log, and no traceback.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mdqcore.errors import DocumentError, RequestError
from mdqcore.model.jsontext import Limits, parse_json

log = logging.getLogger("mdq.serve")
MAX_BODY = 8 << 20  # 8 MiB: a reward batch of a few thousand answers


def _error(status: int, message: str, problems: Any = ()) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message,
                                   "problems": [{"message": p.message, "path": p.path} for p in problems]}},
                        status_code=status)


INLINE_MAX = 64 << 10  # bodies up to 64 KiB run an inline pipeline on the event loop; larger ones in a thread


async def _body(request: Request, max_body: int) -> tuple[Any, int]:
    """Return (the parsed body, its size in bytes)."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > max_body:
        raise RequestError(413, f"the body is {int(size):,} bytes, over the limit of {max_body:,} (--max-body)")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise RequestError(413, f"the body is over the limit of {max_body:,} bytes (--max-body)")
    try:
        return (parse_json(bytes(raw), source="request body", limits=Limits(max_bytes=max_body, max_string=max_body)),
                len(raw))
    except DocumentError as exc:
        status = 400 if any(p.message.startswith(("invalid JSON", "not UTF-8")) for p in exc.problems) else 422
        raise RequestError(status, "the request body is not usable JSON", exc.problems) from None


def _json(body: Any, headers: dict[str, str]) -> Response:
    try:  # orjson: a fifth of json.dumps' time on a reward batch's answer
        data = orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):  # keys or integers orjson does not take
        return JSONResponse(body, headers=headers)
    if b"null" in data:  # orjson writes NaN / Inf as null: re-encode strictly, so a NaN is a 500, never a null reward
        return JSONResponse(body, headers=headers)
    return Response(data, headers=headers, media_type="application/json")


def create_app(server: Any, *, max_body: int = MAX_BODY) -> Starlette:
    """Build the app for one replica (`server` is an mdq_serve.server.Server)."""

    limiter: list[anyio.CapacityLimiter] = []  # made on the first request: it belongs to the server's event loop

    async def pipeline(request: Request) -> Response:
        try:
            body, size = await _body(request, max_body)
            key = request.headers.get("x-mdq-key") or _key_of(body) or uuid.uuid4().hex
            cohort = request.headers.get("x-mdq-cohort", "default")
            if size <= INLINE_MAX and server.pipelines.routes.get(request.url.path, ("",))[0] in server.pipelines.inline:
                # a quick pure-Python pipeline on a small body: a thread would only add a hop and contend for the
                # GIL; a large batch goes to a thread so /healthz and other requests are not held behind it
                response, headers = server.handle(request.url.path, body, key, cohort)
                return _json(response, headers)
            if not limiter:
                # a few pipeline threads, not anyio's 40: pure-Python pipelines hold the GIL, and 32 threads
                # contending for it served a third of the requests 8 threads did
                limiter.append(anyio.CapacityLimiter(max(2, os.cpu_count() or 2)))
            response, headers = await anyio.to_thread.run_sync(server.handle, request.url.path, body, key, cohort,
                                                               limiter=limiter[0])
            return _json(response, headers)
        except RequestError as exc:
            return _error(exc.status, exc.message, exc.problems)
        except Exception:  # noqa: BLE001 - logged with an id; the client gets the id, never a traceback
            ident = uuid.uuid4().hex[:12]
            log.exception("request %s to %s failed", ident, request.url.path)
            return _error(500, f"internal error {ident}: see the server's log")

    async def state(request: Request) -> Response:
        try:
            return JSONResponse(server.state())
        except RequestError as exc:
            return _error(exc.status, exc.message)

    async def healthz(request: Request) -> Response:
        ok = server.ledger_ok
        return JSONResponse({"ok": True, "ledger": "ok" if ok else server.ledger_error, "head": server.rt.head},
                            status_code=200)

    async def metrics(request: Request) -> Response:
        return Response(server.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request: Request, exc: Exception) -> Response:
        routes = ", ".join(sorted(server.pipelines.routes))
        return _error(404, f"no pipeline answers {request.method} {request.url.path} (routes: POST {routes}; "
                           f"GET /v1/state, /healthz, /metrics)")

    async def bad_method(request: Request, exc: Exception) -> Response:
        return _error(405, f"{request.url.path} does not answer {request.method}")

    routes = [Route(r, pipeline, methods=["POST"]) for r in server.pipelines.routes]
    routes += [Route("/v1/state", state, methods=["GET"]), Route("/healthz", healthz, methods=["GET"]),
               Route("/metrics", metrics, methods=["GET"])]
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.stop()

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: bad_method}, lifespan=lifespan)


def _key_of(body: Any) -> str | None:
    """The routing key a body carries: `key`, else the first item's (a batch shares one snapshot)."""
    if isinstance(body, dict):
        if isinstance(body.get("key"), str):
            return body["key"]
        items = body.get("items")
        if isinstance(items, list) and items and isinstance(items[0], dict) and isinstance(items[0].get("key"), str):
            return items[0]["key"]
    return None


__all__ = ["MAX_BODY", "create_app"]
