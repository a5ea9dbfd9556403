"""The real ``cryptotech`` server process (``demo`` or ``run``) as the SSE, API and shutdown
scenarios use it: start, wait until it answers, read its memory, signal it, stop it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import free_port, rss_mb, start_cli

from reliability.core import Context


class Server:
    """``python -m cryptotech.cli ARGS --db DB --port P`` with the context's environment."""

    def __init__(self, ctx: Context, name: str, db: Path, args: list[str],
                 env: dict[str, str] | None = None):
        self.ctx, self.name, self.db, self.args = ctx, name, db, args
        self.env = ctx.child_env(**(env or {}))
        self.log = ctx.log_file(name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 90) -> Server:
        self.proc = start_cli([*self.args, "--db", self.db, "--port", self.port], self.env,
                              self.db.parent, self.log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start-up")
            try:
                if self.get("/status").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer within {timeout:g} s")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(path, **kwargs)
        self.ctx.watch.whole(response.content, path)
        return response

    def status(self) -> dict[str, Any]:
        return self.get("/status").json()

    def rss(self) -> float | None:
        return rss_mb(self.pid)

    def terminate(self, timeout: float = 15) -> tuple[int | None, float]:
        """SIGTERM; (exit code, seconds it took to exit). Killed if it did not exit."""
        assert self.proc is not None
        self.client.close()  # its kept-alive connection would outlive the server
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            code = None
        return code, time.monotonic() - began

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
