"""Does the LLM training pipeline learn? SFT then GRPO on a small model built here, per environment.

For each environment (the referee at stage 2 and the negotiation economy's ``single_trade``):

1. SFT records from several teachers on training episodes (:mod:`mecharena.llm.sft`);
2. a model built on this machine (:func:`mecharena.llm.tiny.build_tiny`: a byte-level BPE trained on
   the records' text, a random 2-layer Llama);
3. ``held-out`` states (episodes never trained on) scored with constrained sampling, ``samples``
   answers each: the random model (``base``), after SFT (``sft``) and after GRPO (``grpo``);
4. SFT (every weight), then GRPO (every weight, constrained sampling, the env's reward).

It reports the held-out means, the paired gains (``grpo - base`` and ``grpo - sft``) with 95%
intervals, the fraction of GRPO groups whose rewards differ (the learning signal), and the
seconds of each stage. Everything is seeded; a run takes about 10 minutes on 2 CPU cores.
``sampling="free"`` runs GRPO on unconstrained samples instead, the comparison of docs/llm.md.
"""

import time
from pathlib import Path
from typing import Any

from mecharena.benchmarks.timing import machine_load
from mecharena.core.errors import UnknownIdError
from mecharena.llm.train import check_sampling

# Per task: the SFT teachers, SFT and GRPO steps, GRPO's learning rate and completions per state (16
# completions a step either way; a negotiation state has fewer answers that matter than a designer state:
# over a run, 8 completions of 2 states gave groups with variance 0.78 and 0.84 at seeds 0 and 1, 16 of one
# state 0.88 and 0.95, GRPO beating SFT with an interval above 0 in all four; docs/llm.md), and the answer's
# token budget.
SETTINGS: dict[str, dict[str, Any]] = {
    "designer:2": {"teachers": ("greedy", "random", "menu"), "sft_steps": 150, "grpo_steps": 40, "rate": 5e-4,
                   "generations": 4, "length": 160},
    "negotiation:single_trade": {"teachers": ("expert", "cooperative", "selfish", "random"), "sft_steps": 150,
                                 "grpo_steps": 40, "rate": 2e-4, "generations": 16, "length": 160},
}
EPISODES = {"designer": 4, "negotiation": 10}  # episodes per teacher


def _records(task: Any, teachers: tuple[str, ...], seed: int) -> list[dict[str, Any]]:
    from mecharena.llm.sft import designer_teacher, negotiation_records, sft_records

    if task.name.startswith("designer"):
        episodes = EPISODES["designer"]
        return [r for t in teachers for r in sft_records(designer_teacher(t, task.stage, seed), task.stage, episodes,
                                                          seed)]
    return [r for t in teachers for r in negotiation_records(task.task, EPISODES["negotiation"], seed, t)]


def one(spec: str, root: Path, *, seed: int = 0, held_out: int = 32, samples: int = 4, scale: float = 1.0,
        sampling: str = "constrained") -> dict:
    """The pipeline on one task; ``scale`` multiplies the step counts (a quick check: 0.1); ``sampling`` is
    GRPO's (the held-out scores always sample constrained answers)."""
    from mecharena.core.jsonl import write_jsonl
    from mecharena.llm.tasks import make_task
    from mecharena.llm.tiny import build_tiny
    from mecharena.llm.train import HELD_OUT, ConstrainedSampler, evaluate, gain, load, train_grpo, train_sft

    task = make_task(spec)
    settings = SETTINGS[spec]
    teachers, length = settings["teachers"], settings["length"]
    folder = root / spec.replace(":", "-")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    records = _records(task, teachers, seed)
    write_jsonl(records, folder / "sft.jsonl")
    build_tiny(folder / "base", [m["content"] for r in records for m in r["messages"]], seed=seed)
    seconds["data"] = time.perf_counter() - start

    start = time.perf_counter()
    base, tokenizer = load(folder / "base")
    rows = task.rows(held_out, HELD_OUT + seed)
    sampler = ConstrainedSampler(base, tokenizer, task.choice, length)
    before = evaluate(base, sampler, task, rows, samples=samples, seed=seed)
    seconds["base_eval"] = time.perf_counter() - start

    start = time.perf_counter()
    sft = train_sft(folder / "sft.jsonl", folder / "sft", model=folder / "base",
                    steps=max(1, round(settings["sft_steps"] * scale)),
                    lora_r=0, learning_rate=3e-3, seed=seed, save_steps=10_000)
    seconds["sft"] = time.perf_counter() - start

    start = time.perf_counter()
    grpo = train_grpo(folder / "grpo", model=sft["model"], task=spec, prompts=256,
                      steps=max(2, round(settings["grpo_steps"] * scale)), num_generations=settings["generations"],
                      prompts_per_step=16 // settings["generations"], max_completion_length=length,
                      learning_rate=settings["rate"], lora_r=0, seed=seed, save_steps=10_000,
                      eval_prompts=held_out, eval_samples=samples, sampling=sampling)
    seconds["grpo_and_evals"] = time.perf_counter() - start
    after = grpo["held_out"]
    return {
        "task": spec, "sampling": sampling, "teachers": list(teachers), "sft_records": len(records),
        "sft_steps": sft["steps"],
        "grpo_steps": grpo["steps"], "held_out_states": held_out, "samples": samples,
        "reward": {"base": before["mean"], "sft": after["before"], "grpo": after["after"]},
        "valid": {"base": before["valid"], "sft": after["valid_before"], "grpo": after["valid_after"]},
        "gain_over_base": gain(before, {"reward": _rewards(folder / "grpo")}),
        "gain_over_sft": after["gain"],
        "groups_with_variance": grpo["groups_with_variance"],
        "sft_loss": [sft["first_loss"], sft["final_loss"]],
        "seconds": seconds,
    }


def _rewards(run: Path) -> list[float]:
    import json

    return json.loads((run / "eval_after.json").read_text())["reward"]


def run(out: str | Path, *, tasks: tuple[str, ...] = tuple(SETTINGS), seed: int = 0, held_out: int = 32,
        samples: int = 4, scale: float = 1.0, threads: int = 2, sampling: str = "constrained") -> dict[str, Any]:
    """Every task in turn (see the module docstring), into ``out``.

    Raises:
        UnknownIdError: a task the benchmark has no settings for.
        ConfigError: an unknown sampling.
    """
    import torch

    unknown = [spec for spec in tasks if spec not in SETTINGS]
    if unknown:
        raise UnknownIdError(f"no benchmark settings for task {unknown[0]!r}; allowed: {', '.join(SETTINGS)}")
    check_sampling(sampling)
    torch.set_num_threads(threads)
    load_before = machine_load()
    start = time.perf_counter()
    cpu = time.process_time()
    results = [one(spec, Path(out), seed=seed, held_out=held_out, samples=samples, scale=scale, sampling=sampling)
               for spec in tasks]
    return {"benchmark": "llm-train", "results": results, "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu, "threads": threads, "load": {"before": load_before,
                                                                              "after": machine_load()}}


__all__ = ["SETTINGS", "one", "run"]
