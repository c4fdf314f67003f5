"""``mecharena train ...``: SFT data from teachers' decisions, SFT, and GRPO on the referee or the negotiation economy."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mecharena.cli.designer import MarketSeedOption, StageOption
from mecharena.cli.shell import JsonFlag, fail, make_console, seed_option, stdout_to_stderr
from mecharena.core.errors import MechArenaError

out = make_console()
err = make_console(stderr=True)

app = typer.Typer(no_args_is_help=True, help="Training data and training runs for the LLM policies.")

ModelOption = Annotated[Path | None, typer.Option("--model", help="folder of the base model (transformers format)")]
GgufOption = Annotated[Path | None, typer.Option(
    "--gguf", help="a GGUF file instead of --model (dequantised), e.g. the shipped SmolLM2")]
OutOption = Annotated[Path, typer.Option(
    "--out", help="run folder: run.json, checkpoints/, history.json, curves.png, adapter/, model/ (merged)")]
StepsOption = Annotated[int, typer.Option("--steps", help="optimizer steps")]
RateOption = Annotated[float, typer.Option("--learning-rate")]
LoraOption = Annotated[int, typer.Option("--lora-r", help="LoRA rank; 0 trains every weight")]
SaveOption = Annotated[int, typer.Option("--save-steps", help="a checkpoint every this many steps")]


@app.command("sft-data")
def sft_data(
    out_path: Annotated[Path, typer.Option("--out", help="JSONL file of chat records")],
    stage: StageOption = 2,
    episodes: Annotated[int, typer.Option("--episodes", help="training episodes per teacher")] = 20,
    seed: MarketSeedOption = 0,
    teachers: Annotated[list[str] | None, typer.Option(
        "--teacher", help="greedy | random | menu | oracle | learned[:FILE] | constant:FILE (repeat for several)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Chat-format SFT data from designers' decisions (training populations only), each with the return it led to."""
    from mecharena.llm.sft import designer_teacher, sft_records, write_jsonl

    teachers = teachers or ["learned"]
    try:
        records = []
        for teacher in teachers:
            records += sft_records(designer_teacher(teacher, stage, seed), stage, episodes, seed)
        path = write_jsonl(records, out_path)
    except MechArenaError as exc:
        raise fail(exc) from None
    summary = {"records": len(records), "stage": stage, "episodes": episodes, "teachers": teachers, "out": str(path)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(escape(f"{len(records)} decisions of {', '.join(teachers)} at stage {stage} written to {path}"))


def _report(title: str, summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
                              if not isinstance(v, dict)) or json.dumps(value)
        table.add_row(key, escape(f"{value:.4f}" if isinstance(value, float) else str(value)))
    out.print(table)


def _train(run: Any, title: str, as_json: bool, **kwargs: Any) -> None:
    from mecharena.llm.train import Interrupted

    try:
        with stdout_to_stderr():  # TRL prints its training logs on stdout
            summary = run(**kwargs)
    except Interrupted as exc:
        err.print(f"[bold yellow]stopped:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except MechArenaError as exc:
        raise fail(exc) from None
    _report(title, summary, as_json)


@app.command("sft")
def sft(
    data: Annotated[Path, typer.Option("--data", help="JSONL records of `train sft-data` or `negotiate sft-data`")],
    out_dir: OutOption,
    model: ModelOption = None,
    gguf: GgufOption = None,
    min_return: Annotated[float | None, typer.Option(
        "--min-return", help="keep the records of episodes that returned at least this much")] = None,
    steps: StepsOption = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", help="records per step")] = 8,
    learning_rate: RateOption = 2e-4,
    lora_r: LoraOption = 8,
    save_steps: SaveOption = 50,
    seed: Annotated[int, seed_option("seed of the shuffling and initialisation")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Supervised fine-tuning (TRL) on teachers' decisions; writes the merged model to OUT/model. Ctrl-C saves a
    checkpoint; the same command resumes."""
    from mecharena.llm.train import train_sft

    _train(train_sft, "SFT run", as_json, data=data, out=out_dir, model=model, gguf=gguf, min_return=min_return,
           steps=steps, batch_size=batch_size, learning_rate=learning_rate, lora_r=lora_r, seed=seed,
           save_steps=save_steps)


@app.command("grpo")
def grpo(
    out_dir: OutOption,
    model: ModelOption = None,
    gguf: GgufOption = None,
    task: Annotated[str, typer.Option("--task", help="designer:STAGE or negotiation:TASK")] = "designer:2",
    prompts: Annotated[int, typer.Option("--prompts", help="dataset rows (environment states)")] = 64,
    steps: StepsOption = 50,
    generations: Annotated[int, typer.Option("--generations", help="completions per prompt (GRPO group)")] = 4,
    prompts_per_step: Annotated[int, typer.Option("--prompts-per-step", help="groups per optimizer step")] = 4,
    max_completion_length: Annotated[int, typer.Option(
        "--max-completion-length", help="tokens per completion (a DesignerChoice takes about 95 with SmolLM2)")] = 160,
    learning_rate: RateOption = 1e-4,
    lora_r: LoraOption = 8,
    beta: Annotated[float, typer.Option("--beta", help="KL coefficient against the starting model")] = 0.0,
    sampling: Annotated[str, typer.Option(
        "--sampling", help="constrained (answers held to the schema, as at inference) or free")] = "constrained",
    format_weight: Annotated[float, typer.Option("--format-weight", help="weight of the format reward")] = 0.0,
    turns: Annotated[int, typer.Option(
        "--turns", help="turns per completion: > 1 plays episodes, trained on their summed reward")] = 1,
    eval_prompts: Annotated[int, typer.Option(
        "--eval-prompts", help="held-out states scored before and after training (0: none)")] = 0,
    save_steps: SaveOption = 10,
    seed: Annotated[int, seed_option("seed of the dataset, sampling and initialisation")] = 0,
    use_vllm: Annotated[bool, typer.Option("--vllm", help="generate with vLLM (GPU machines; free sampling)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """GRPO (TRL): every completion is scored on the environment state its prompt describes. Ctrl-C saves a
    checkpoint; the same command resumes."""
    from mecharena.llm.train import train_grpo

    _train(train_grpo, "GRPO run", as_json, out=out_dir, model=model, gguf=gguf, task=task, prompts=prompts,
           steps=steps, num_generations=generations, prompts_per_step=prompts_per_step,
           max_completion_length=max_completion_length, learning_rate=learning_rate, lora_r=lora_r, beta=beta,
           sampling=sampling, format_weight=format_weight, turns=turns, eval_prompts=eval_prompts,
           save_steps=save_steps, seed=seed, use_vllm=use_vllm)
