"""Helpers the command-line specifications share: ``python -m starter`` run in a subprocess,
as operators run it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from temporalio.testing import WorkflowEnvironment

from settings import Settings


async def cli(
    *args: str,
    env: WorkflowEnvironment | None = None,
    settings: Settings,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command with the test's database and task queue; without ``env``, a Temporal
    address nobody answers on."""
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "TEMPORAL_ADDRESS": (
            env.client.service_client.config.target_host if env else "127.0.0.1:1"
        ),
        # Who the command acts as: the tests' own credentials file, never a developer's.
        "CASEWORK_CREDENTIALS": "/nonexistent/casework-credentials.json",
        **(extra_env or {}),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter", *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
    )
