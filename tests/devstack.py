"""``make run`` as a user runs it, on free ports: for specifications of the runner and of
the README's walkthrough.

``DevStack.start(var_dir)`` runs ``python -m starter dev`` (dev server, worker, API) in its own
session with DEV_SERVER_PORT, DEV_SERVER_UI_PORT, API_PORT, VAR_DIR and DATABASE_URL of its
own, and waits for the banner. ``stack.env`` is the environment a user's second terminal has
(no TEMPORAL_ADDRESS: everything must follow the configured ports); ``stack.run(...)`` runs a
command there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.converter import DataConverter

from infra.codec import KEY_FILE_NAME, EncryptionCodec, read_key_file
from infra.temporal import data_converter

ROOT = Path(__file__).resolve().parent.parent
BANNER = "casework is running"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(var_dir: Path, temporal_port: int, ui_port: int, api_port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The runner finds its own key (the key file it creates), as on a user's machine.
        if not key.startswith(("TEMPORAL_", "CODEC_")) and key not in ("DATABASE_URL", "TASK_QUEUE")
    }
    env.update(
        DEV_SERVER_PORT=str(temporal_port),
        DEV_SERVER_UI_PORT=str(ui_port),
        API_PORT=str(api_port),
        WORKER_METRICS_PORT=str(free_port()),
        VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'cases.db'}",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class DevStack:
    var_dir: Path
    temporal_port: int
    ui_port: int
    api_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    offset: int = 0  # where the current runner's output starts in the log

    def __post_init__(self) -> None:
        self.log = self.var_dir / "runner.out"

    @classmethod
    def on_free_ports(cls, var_dir: Path) -> DevStack:
        var_dir.mkdir(parents=True, exist_ok=True)
        ports = free_port(), free_port(), free_port()
        return cls(var_dir, *ports, env=stack_env(var_dir, *ports))

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the runner (without waiting for it)."""
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "starter", "dev"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a test signals the runner alone, as a terminal would
        )
        return self.process

    def start(self, seconds: float = 90) -> DevStack:
        """Start the runner and wait until it prints its banner."""
        process = self.launch()
        deadline = time.monotonic() + seconds
        while BANNER not in self.output():
            if process.poll() is not None:
                raise AssertionError(f"make run exited {process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"make run never came up:\n{self.output()}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        """What the current runner printed (stdout and stderr)."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A shell command in the user's second terminal (bash, from the repository)."""
        return subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def interrupt(self, seconds: float = 30) -> int:
        """Ctrl-C, as a terminal sends it; the runner's exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=seconds)

    def kill(self) -> None:
        """The runner dies without cleaning up (SIGKILL, a closed terminal, an OOM kill)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def data_converter(self) -> DataConverter:
        """The converter of the stack's own processes: the keys of the file its first run
        created (not the test session's CODEC_KEYS)."""
        keys = read_key_file(self.var_dir / KEY_FILE_NAME)
        return data_converter(EncryptionCodec(keys))

    def dev_server_pid(self) -> int:
        return int((self.var_dir / "temporal.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours is dead too.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
