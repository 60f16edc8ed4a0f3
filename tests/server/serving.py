"""Starting `anyspec serve` as a subprocess on a free port, and reading its /metrics."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL = "gemma-3-270m"  # the embedded target's name, which the server serves by default


@dataclass
class Server:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, leaving out the model_name label that every sample
        carries (test_serve_toy.py checks it)."""
        return metrics_samples(httpx.get(self.url + "/metrics", timeout=30).text, model_name=False)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_dir: Path, *flags: str, env: dict | None = None, timeout: float = 240) -> Server:
    port = free_port()
    log = tmp_dir / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "anyspec.cli", "serve", "--port", str(port), *flags]
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anyspec serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/health", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"anyspec serve did not become healthy in {timeout} s:\n{log.read_text()}")


def metrics_samples(text: str, model_name: bool = True) -> dict[str, float]:
    """Every sample of a /metrics text: {'name{label="value",...}': value}, with the labels in
    alphabetical order; model_name=False leaves that label out."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())
                              if model_name or k != "model_name")
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples
