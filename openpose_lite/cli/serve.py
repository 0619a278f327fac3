"""``openpose-lite serve`` (:mod:`openpose_lite.serve`, on uvicorn): the model options are ``infer``'s, the
server's :class:`~openpose_lite.serve.options.ServeOptions`; bad options and a taken port are refused before
the weights are read."""

from __future__ import annotations

import argparse
import os
import socket

from openpose_lite.cli.errors import EXIT_OK, CliError, interrupt_code, interrupt_word
from openpose_lite.cli.models_args import (add_hands_faces_args, add_predictor_args, add_weights_args, build_predictor,
                                          hands_and_faces, positive_float, weights_path)
from openpose_lite.serve.options import TOKEN_ENV, ServeOptions

# The options of the ServeOptions fields that are no ServeOptions option, for their errors.
_OTHER_OPTIONS = {"batch_limit": "--batch-size", "max_body_bytes": "--max-body-mb"}


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="the model as an HTTP API (POST /v1/pose) with a page that draws the people (images, webcam)",
        description="Serves a model on uvicorn: POST /v1/pose (an image, raw or as the multipart field 'image' -> "
        "the people as OpenPose JSON and COCO results; ?render=1: the drawn image), GET /v1/model, GET /v1/health, "
        "a WebSocket for webcam frames (/v1/ws) and a page at / that draws the people. Concurrent requests of one "
        "image size share a network batch (--batch-size: by default 8 on a GPU, 1 on the CPU; --batch-wait-ms). "
        "Listens on 127.0.0.1 unless --host says otherwise; any other host needs --token.",
    )
    add_weights_args(p)
    add_predictor_args(p)
    add_hands_faces_args(p)
    ServeOptions.add_arguments(p)
    # --batch-size here: the most images of concurrent requests in one network call (0, the default: by device)
    p.set_defaults(batch_size=0, token=os.environ.get(TOKEN_ENV))
    p.add_argument("--max-body-mb", type=positive_float, default=ServeOptions.max_body_bytes / (1 << 20),
                   metavar="MB", help="largest request body or WebSocket frame, in MiB (default: %(default)g)")


def _options(args: argparse.Namespace) -> ServeOptions:
    if args.boxes is not None:
        raise CliError("--boxes names boxes by the image ids of a file; a served image has none: give a top-down "
                       "model --person-detector FILE instead")
    try:
        return ServeOptions.from_args(args, token=args.token or None, batch_limit=args.batch_size or None,
                                      max_body_bytes=int(args.max_body_mb * (1 << 20)))
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        field = field.removeprefix("serve.")
        raise CliError(f"{_OTHER_OPTIONS.get(field) or ServeOptions.flag_of(field)}: {message}") from None


def _bind(options: ServeOptions) -> socket.socket:
    """The listening socket, bound before the weights are read: a taken port is said at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # clients that connect while the model loads wait in the backlog
    except OSError as exc:
        raise CliError(f"--host {options.host} --port {options.port}: {exc.strerror or exc}") from None
    return sock


def _run_serve(args: argparse.Namespace) -> int:
    options = _options(args)
    try:
        import uvicorn

        from openpose_lite.serve.app import create_app, uvicorn_config
    except ImportError as exc:
        raise CliError(f"serve needs the serve extra ({exc.name or exc} is not installed): "
                       "pip install 'openpose-lite[serve]'") from None
    weights_path(args)  # named before the port is taken
    sock = _bind(options)
    with sock:
        predictor = hands_and_faces(args, build_predictor(args))
        app = create_app(predictor, options)
        server = uvicorn.Server(uvicorn_config(app, options, access_log=args.verbose))
        host, port = sock.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        print(f"openpose-lite serve: {predictor.describe()}, batches of up to {app.state.service.batcher.limit}", flush=True)
        auth = ('?token=TOKEN', ' -H "Authorization: Bearer TOKEN"') if options.token else ("", "")
        print(f"open {url}{auth[0]} (the page); curl{auth[1]} -F image=@photo.jpg {url}v1/pose; Ctrl-C stops",
              flush=True)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt as exc:
            print(f"openpose-lite serve: {interrupt_word(exc)}; stopped", flush=True)
            return interrupt_code(exc)
    return EXIT_OK
