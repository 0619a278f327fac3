"""The pose server: an ASGI application (Starlette) around one predictor, and the uvicorn settings it runs with.

Routes: ``POST /v1/pose`` (an image as the raw body or as the multipart field ``image`` -> the
people, :func:`~openpose_lite.serve.answers.pose_payload`; ``?render=1``: the image with them
drawn, JPEG), ``GET /v1/model``, ``GET /v1/health``, ``WS /v1/ws`` (webcam frames in, people
out, newest frame first) and the page at ``/``.

Every bound of :class:`~openpose_lite.serve.options.ServeOptions` is answered with a status and
``{"error": ...}`` (docs/cli.md lists them); whatever a client sends, the server goes on serving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from openpose_lite.images import ImageReadError, ImageTooLargeError, read_image_bytes
from openpose_lite.serve.answers import describe_model, pose_payload
from openpose_lite.serve.batcher import BatcherClosed, MicroBatcher, QueueFull
from openpose_lite.serve.options import ServeOptions

__all__ = ["TOKEN_COOKIE", "create_app", "uvicorn_config"]

log = logging.getLogger(__name__)

TOKEN_COOKIE = "openpose_lite_token"
# Images decoded at once: decoding is work for the cores, and each decoded image holds memory.
_DECODERS = 2


class Refusal(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": str(self)}, self.status, headers=self.headers)


class _TokenGate:
    """ASGI middleware: with a token set, a request (or WebSocket) without it gets 401 (closed, 1008). The token
    comes as ``Authorization: Bearer <token>``, ``?token=<token>`` or the page's cookie, compared in constant time."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    def allowed(self, scope: dict) -> bool:
        conn = HTTPConnection(scope)
        auth = conn.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        given = given or conn.query_params.get("token") or conn.cookies.get(TOKEN_COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            message = "this server needs its token: Authorization: Bearer <token>, or ?token=<token>"
            await Refusal(401, message, {"WWW-Authenticate": "Bearer"}).response()(scope, receive, send)


class _Service:
    """The routes' state: the predictor behind its batcher, the options, the page."""

    def __init__(self, predictor: Any, options: ServeOptions) -> None:
        self.predictor, self.options = predictor, options
        self.model = describe_model(predictor)
        limit = options.batch_limit or (8 if self.model["device"].startswith("cuda") else 1)
        self.batcher = MicroBatcher(predictor.predict_batch, options.batch_wait_ms / 1000, limit, options.queue_bound)
        static = resources.files("openpose_lite.serve") / "static"
        self.page = {name: (static / name).read_bytes() for name in ("index.html", "app.js")}
        self._decoders = asyncio.Semaphore(_DECODERS)  # bound to the event loop on first use (Python >= 3.10)

    # ------------------------------------------------------------------ the page, model, health
    async def index(self, request: Request) -> Response:
        response = Response(self.page["index.html"], media_type="text/html; charset=utf-8")
        token = request.query_params.get("token")
        if token and self.options.token is not None:  # the token gate let it in: the page's own requests carry it
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def script(self, request: Request) -> Response:
        return Response(self.page["app.js"], media_type="text/javascript; charset=utf-8")

    async def describe(self, request: Request) -> Response:
        return JSONResponse(self.model)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "waiting": self.batcher.waiting, "batch_limit": self.batcher.limit,
                             **self.batcher.stats})

    # ------------------------------------------------------------------ POST /v1/pose
    async def pose(self, request: Request) -> Response:
        deadline = time.monotonic() + self.options.request_timeout_s
        try:
            body = await asyncio.wait_for(self._body(request), self.options.request_timeout_s)
            data, name = await self._upload(request, body)
            image = await self._decode(data, name)
            poses = await self._predict(image, deadline)
            if request.query_params.get("render") in ("1", "true", "yes"):
                return Response(await run_in_threadpool(_render, image, poses), media_type="image/jpeg")
            return JSONResponse(pose_payload(poses, image.shape[:2]))
        except Refusal as exc:
            return exc.response()
        except TimeoutError:
            return Refusal(408, f"the request body did not arrive within {self.options.request_timeout_s:g} s").response()
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it

    async def _body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it is known to pass ``max_body_bytes``."""
        limit = self.options.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Refusal(413, f"the request body is {length} bytes, above this server's limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal(413, f"the request body is more than this server's limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _upload(self, request: Request, body: bytes) -> tuple[bytes, str]:
        """The image's bytes and name: the raw body, or the multipart field ``image`` (or the one file sent)."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return body, "in the request body"

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=16,
                                                              max_part_size=self.options.max_body_bytes)
        except (HTTPException, MultiPartException) as exc:
            raise Refusal(400, f"a malformed multipart body: {getattr(exc, 'detail', None) or exc}") from None
        try:
            files = [v for _, v in form.multi_items() if not isinstance(v, str)]
            if not files:
                raise Refusal(400, "the multipart body holds no file; send the image as the field 'image' "
                                   "(curl -F image=@photo.jpg)")
            return await files[0].read(), files[0].filename or "image"
        finally:
            await form.close()

    async def _decode(self, data: bytes, name: str) -> Any:
        async with self._decoders:
            try:
                image = await run_in_threadpool(read_image_bytes, data, name, self.options.max_image_pixels)
            except ImageTooLargeError as exc:
                raise Refusal(413, str(exc)) from None
            except ImageReadError as exc:
                raise Refusal(400, str(exc)) from None
        problem = getattr(self.predictor, "input_problem", None)
        reason = problem(image.shape[:2]) if problem is not None else None
        if reason:
            raise Refusal(422, f"image {name}: {reason}")
        return image

    async def _predict(self, image: Any, deadline: float) -> Any:
        try:
            return await self.batcher.predict(image, max(0.0, deadline - time.monotonic()))
        except QueueFull as exc:
            raise Refusal(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except BatcherClosed as exc:
            raise Refusal(503, str(exc), {"Retry-After": "5"}) from None
        except TimeoutError:
            raise Refusal(504, f"no answer within {self.options.request_timeout_s:g} s: the server is busy",
                          {"Retry-After": "1"}) from None
        except ValueError as exc:
            raise Refusal(422, f"the model cannot take this image: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a failure on one image answers that request only
            log.warning("prediction failed: %s", exc, exc_info=True)
            raise Refusal(500, f"the model failed on this image ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ WS /v1/ws
    async def frames(self, websocket: WebSocket) -> None:
        """Webcam frames (binary messages, encoded images) in; per frame answered, its people with
        ``frame`` (its number on this connection) and ``dropped`` (frames replaced by a newer one
        before the network was free: the newest frame is always the next one run)."""
        origin = websocket.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != websocket.headers.get("host"):
            await websocket.close(code=1008)  # another site's page may not use this server through a browser
            return
        await websocket.accept()
        newest: list[Any] = [None]  # (number, bytes) of the newest frame not yet run
        arrived = asyncio.Event()
        counts = {"received": 0, "dropped": 0, "open": 1}

        async def receive() -> None:
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    if message.get("bytes") is not None:
                        counts["dropped"] += newest[0] is not None
                        newest[0] = (counts["received"], message["bytes"])
                        counts["received"] += 1
                        arrived.set()
            finally:
                counts["open"] = 0
                arrived.set()

        reader = asyncio.create_task(receive())
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                if not counts["open"]:
                    break
                if newest[0] is None:
                    continue
                (number, data), newest[0] = newest[0], None
                answer = await self._frame_answer(data, number)
                await websocket.send_json({**answer, "frame": number, "dropped": counts["dropped"]})
        except (WebSocketDisconnect, RuntimeError):  # the page went away while its answer was sent
            pass
        finally:
            reader.cancel()

    async def _frame_answer(self, data: bytes, number: int) -> dict:
        deadline = time.monotonic() + self.options.request_timeout_s
        try:
            image = await self._decode(data, f"frame {number}")
            return pose_payload(await self._predict(image, deadline), image.shape[:2])
        except Refusal as exc:
            return {"error": str(exc), "status": exc.status}


def _render(image: Any, poses: Any) -> bytes:
    import cv2

    from openpose_lite.viz import draw_poses

    ok, jpeg = cv2.imencode(".jpg", draw_poses(image, poses), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV could not encode the drawing as JPEG")
    return jpeg.tobytes()


def create_app(predictor: Any, options: ServeOptions | None = None) -> Starlette:
    """The ASGI application serving ``predictor`` (anything with ``predict_batch(images)`` and ``skeleton``)
    under ``options``. Its batcher's worker starts with the first image and stops at the ASGI lifespan's end."""
    options = options or ServeOptions()
    service = _Service(predictor, options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await run_in_threadpool(service.batcher.close)

    routes = [
        Route("/", service.index),
        Route("/app.js", service.script),
        Route("/v1/model", service.describe),
        Route("/v1/health", service.health),
        Route("/v1/pose", service.pose, methods=["POST"]),
        WebSocketRoute("/v1/ws", service.frames),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_TokenGate, token=options.token)], lifespan=lifespan)
    app.state.service = service
    return app


def uvicorn_config(app: Starlette, options: ServeOptions, access_log: bool = False):
    """The ``uvicorn.Config`` that runs ``app`` within ``options``' bounds (beyond ``4 * queue_bound + 32``
    connections uvicorn answers 503). Logging stays the caller's: uvicorn's loggers propagate to the root."""
    import uvicorn

    return uvicorn.Config(app, host=options.host, port=options.port, log_config=None, access_log=access_log,
                          ws_max_size=options.max_body_bytes, limit_concurrency=4 * options.queue_bound + 32,
                          h11_max_incomplete_event_size=64 << 10, timeout_keep_alive=5, timeout_graceful_shutdown=5)
