"""WebSocket throughput of ``mecharena serve``: designer-env steps per second over loopback.

The server runs in a subprocess (its own GIL; on a 2-core machine client and server get a core
each) and is driven over OpenEnv's ``/ws`` protocol (``{"type": "step", "data": action}`` ->
``{"type": "observation", "data": {...}}``) by a lean ``websockets`` client: one session stepping
back to back, then ``sessions`` sessions at once (one event loop, one socket each). Every
session resets with its own seed and steps a fixed mechanism, resetting when its episode ends;
resets are not counted. For scale, ``local_steps_per_s`` times the same steps on an in-process
``DesignerEnv`` and ``openenv_client_steps_per_s`` the same single session through OpenEnv's own
``GenericEnvClient``. Target: at least 1,500 WebSocket steps/s on a 2-core machine.

The server must answer ``/health`` within ``startup_timeout`` seconds (polled every 0.1 s),
else :class:`~mecharena.core.errors.MechArenaError` says so with the end of its stderr. Wall
and CPU seconds of each measurement (the client's ``process_time``, and the server's own CPU
time, counted once it has exited) and the machine load before and after are reported with the
medians (:mod:`mecharena.benchmarks.timing`).
"""

import asyncio
import json
import statistics
import time
from typing import Any

from mecharena.benchmarks.timing import cpu_seconds, machine_load, report
from mecharena.core.errors import MechArenaError

DEFAULT_STARTUP_TIMEOUT = 60.0

ACTION = {"rule": "second_price", "reserve": 0.2, "competing_bids": True, "collusion_penalty": 1.0,
          "coalition": "penalize_confirmed"}


async def _drive(url: str, steps: int, seed: int, stage: int) -> float:
    """Step one session ``steps`` times; return the seconds spent stepping."""
    from websockets.asyncio.client import connect

    async with connect(f"{url.replace('http', 'ws', 1)}/ws", max_size=None) as ws:
        reset = json.dumps({"type": "reset", "data": {"seed": seed, "stage": stage}})
        step = json.dumps({"type": "step", "data": ACTION})
        await ws.send(reset)
        await ws.recv()
        seconds = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            await ws.send(step)
            reply = json.loads(await ws.recv())
            seconds += time.perf_counter() - start
            if reply["type"] != "observation":
                raise RuntimeError(f"server error: {reply['data']}")
            if reply["data"]["done"]:
                await ws.send(reset)
                await ws.recv()
        return seconds


async def _concurrent(url: str, steps: int, sessions: int, stage: int) -> float:
    """Wall-clock seconds for ``sessions`` sessions to take ``steps`` steps each, side by side."""
    start = time.perf_counter()
    await asyncio.gather(*(_drive(url, steps, seed, stage) for seed in range(sessions)))
    return time.perf_counter() - start


def _local(steps: int, stage: int) -> float:
    from mecharena.designer.action import MechanismAction
    from mecharena.designer.env import DesignerEnv

    env, action = DesignerEnv(stage=stage), MechanismAction(**ACTION)
    env.reset(seed=0)
    seconds = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        _, _, done, _ = env.step(action)
        seconds += time.perf_counter() - start
        if done:
            env.reset(seed=0)
    return seconds


def _openenv_client(url: str, steps: int, stage: int) -> float:
    from openenv.core.generic_client import GenericEnvClient

    with GenericEnvClient(base_url=url).sync() as client:
        client.reset(seed=0, stage=stage)
        seconds = 0.0
        for _ in range(steps):
            start = time.perf_counter()
            result = client.step(ACTION)
            seconds += time.perf_counter() - start
            if result.done:
                client.reset(seed=0, stage=stage)
        return seconds


def run(steps: int = 3000, sessions: int = 16, stage: int = 1, repeats: int = 3,
        client_steps: int = 500, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> dict[str, Any]:
    """Time ``steps`` WebSocket steps on one session, and ``steps`` spread over ``sessions`` concurrent
    ones, ``repeats`` times each, in turn; report the medians (the machine may be shared) and every trial.

    Raises:
        MechArenaError: the server did not come up within ``startup_timeout`` seconds.
    """
    from mecharena.server.app import spawn_server

    load = machine_load()
    _local(50, stage)  # compile and warm caches
    local_cpu = time.process_time()
    local = _local(steps, stage)
    local_cpu = time.process_time() - local_cpu
    per_session = max(steps // max(sessions, 1), 1)
    single, concurrent = [], []
    wall_start, cpu_start = time.perf_counter(), cpu_seconds(children=True)
    try:
        with spawn_server(max_sessions=max(sessions, 1) + 2, stage=stage, startup_timeout=startup_timeout) as url:
            asyncio.run(_drive(url, 100, 0, stage))  # warm the server (compilation, first allocations)
            for _ in range(repeats):
                single.append(steps / asyncio.run(_drive(url, steps, 0, stage)))
                concurrent.append(per_session * sessions / asyncio.run(_concurrent(url, per_session, sessions, stage)))
            client = client_steps / _openenv_client(url, client_steps, stage) if client_steps else None
    except RuntimeError as exc:
        if "did not start" not in str(exc):
            raise
        raise MechArenaError(f"bench serve: the server did not answer /health within startup_timeout="
                             f"{startup_timeout:g} s (raise --startup-timeout on a loaded machine): {exc}") from None
    return report("serve", {
        "stage": stage,
        "steps": steps,
        "sessions": sessions,
        "ws_steps_per_s": statistics.median(single),
        "ws_concurrent_steps_per_s": statistics.median(concurrent),
        "ws_round_trip_us": 1e6 / statistics.median(single),
        "ws_trials": [round(x) for x in single],
        "ws_concurrent_trials": [round(x) for x in concurrent],
        "server_session_wall_seconds": time.perf_counter() - wall_start,
        "server_session_cpu_seconds": cpu_seconds(children=True) - cpu_start,
        "local_steps_per_s": steps / local,
        "local_step_us": local / steps * 1e6,
        "local_cpu_seconds": local_cpu,
        "openenv_client_steps_per_s": client,
        "startup_timeout_s": startup_timeout,
        "target_ws_steps_per_s": 1500,
    }, load, repeats)
