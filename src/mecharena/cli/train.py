"""``mecharena train ...``: SFT data from a strong designer's decisions, and GRPO runs on the referee environment."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mecharena.cli.designer import MarketSeedOption, StageOption
from mecharena.cli.shell import JsonFlag, fail, make_console, seed_option, stdout_to_stderr
from mecharena.core.errors import MechArenaError

out = make_console()

app = typer.Typer(no_args_is_help=True, help="Training data and training runs for the LLM designer.")


@app.command("sft-data")
def sft_data(
    out_path: Annotated[Path, typer.Option("--out", help="JSONL file of chat records")],
    stage: StageOption = 2,
    episodes: Annotated[int, typer.Option("--episodes", help="training episodes")] = 20,
    seed: MarketSeedOption = 0,
    teacher: Annotated[str, typer.Option("--teacher", help="greedy | learned[:FILE] | constant:FILE")] = "learned",
    as_json: JsonFlag = False,
) -> None:
    """Chat-format SFT data from a strong non-LLM designer's decisions (training populations only)."""
    from mecharena.designer.policies import make_policy
    from mecharena.llm.sft import sft_records, write_jsonl

    try:
        records = sft_records(make_policy(teacher, stage, seed=seed), stage, episodes, seed)
        path = write_jsonl(records, out_path)
    except MechArenaError as exc:
        raise fail(exc) from None
    summary = {"records": len(records), "stage": stage, "episodes": episodes, "teacher": teacher, "out": str(path)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(escape(f"{len(records)} decisions of {teacher} at stage {stage} written to {path}"))


@app.command("grpo")
def grpo(
    model: Annotated[Path, typer.Option("--model", help="folder of the base model (transformers format)")],
    out_dir: Annotated[Path, typer.Option("--out", help="output directory: history.json, curves.png, adapter/")],
    stage: StageOption = 2,
    prompts: Annotated[int, typer.Option("--prompts", help="dataset rows (environment states)")] = 8,
    steps: Annotated[int, typer.Option("--steps", help="optimizer steps")] = 3,
    generations: Annotated[int, typer.Option("--generations", help="completions per prompt (GRPO group)")] = 4,
    max_completion_length: Annotated[int, typer.Option(
        "--max-completion-length", help="tokens per completion (a DesignerChoice takes about 95 with SmolLM2)")] = 128,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = 5e-5,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank")] = 8,
    beta: Annotated[float, typer.Option("--beta", help="KL coefficient")] = 0.04,
    seed: Annotated[int, seed_option("seed of the dataset, sampling and initialisation")] = 0,
    use_vllm: Annotated[bool, typer.Option("--vllm", help="generate with vLLM (GPU machines)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """GRPO (TRL) with LoRA: every completion is scored on the environment state its prompt describes."""
    from mecharena.llm.train import train_grpo as run

    try:
        with stdout_to_stderr():  # TRL prints its training logs on stdout
            summary = run(model, out_dir, stage=stage, prompts=prompts, steps=steps, num_generations=generations,
                          max_completion_length=max_completion_length, learning_rate=learning_rate,
                          lora_r=lora_r, beta=beta, seed=seed, use_vllm=use_vllm)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title="GRPO run")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, escape(f"{value:.4f}" if isinstance(value, float) else str(value)))
    out.print(table)
