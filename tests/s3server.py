"""An S3-compatible server (moto) on 127.0.0.1, started and stopped by the tests, with faults
injected in front of it: chosen requests answer 503 (SlowDown) or 500 until told otherwise."""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

ACCESS_KEY = "AKIANBOPSTEST0000001"
SECRET_KEY = "nbops-moto-secret-key-0123456789abcdef"
BUCKET = "nbops-artifacts"


@dataclass
class Fault:
    """Answer ``status`` to requests whose method matches and whose path matches ``path``.

    ``times`` bounds how many requests fail (None: until the fault is cleared).
    """

    method: str
    path: str
    status: int = 503
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            method == self.method
            and re.search(self.path, path) is not None
            and (self.times is None or self.hits < self.times)
        )


@dataclass
class Faults:
    """The faults in force, and a log of every request the server saw."""

    active: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str, int, float]] = field(default_factory=list)  # method, path, status, time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.active.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.active.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.active:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def requests(self, method: str, path: str = "") -> list[tuple[str, str, int, float]]:
        with self.lock:
            return [r for r in self.seen if r[0] == method and re.search(path, r[1])]


_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault</Message>'
    "<RequestId>nbops-test</RequestId></Error>"
)


class S3Server:
    """moto's S3 on 127.0.0.1 behind a fault injector; the bucket exists once started."""

    def __init__(self) -> None:
        self.faults = Faults()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Callable[..., Iterable[bytes]]:
        from moto.server import DomainDispatcherApplication, create_backend_app

        inner = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            fault = self.faults.pick(method, path)
            if fault is None:
                status_seen: list[int] = []

                def recording_start(status: str, headers: Any, *rest: Any) -> Any:
                    status_seen.append(int(status.split()[0]))
                    return start_response(status, headers, *rest)

                body = inner(environ, recording_start)
                with self.faults.lock:
                    self.faults.seen.append((method, path, status_seen[0] if status_seen else 0, time.monotonic()))
                return body
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length:
                environ["wsgi.input"].read(length)  # drain the body so the connection stays sane
            with self.faults.lock:
                self.faults.seen.append((method, path, fault.status, time.monotonic()))
            code = "SlowDown" if fault.status == 503 else "InternalError"
            start_response(f"{fault.status} Injected", [("Content-Type", "application/xml")])
            return [_ERROR.format(code=code).encode()]

        return app

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the test log
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        # moto's backends live in this process: start every server from an empty store
        reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - our loopback server
        import boto3

        boto3.client("s3", **self.client_kwargs()).create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def client_kwargs(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": "us-east-1",
        }

    def env(self) -> dict[str, str]:
        """What a process needs to reach this server through boto3, s3fs and MLflow."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def object(self, key: str) -> bytes:
        import boto3

        body: bytes = boto3.client("s3", **self.client_kwargs()).get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def put(self, key: str, raw: bytes) -> None:
        import boto3

        boto3.client("s3", **self.client_kwargs()).put_object(Bucket=BUCKET, Key=key, Body=raw)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, read straight from the server (no client cache)."""
        import boto3

        client = boto3.client("s3", **self.client_kwargs())
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def started() -> Iterator[S3Server]:
    """Generator body for a fixture: a fresh server, stopped afterwards."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
