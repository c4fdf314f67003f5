"""Fine-tuning LLM policies: SFT on teachers' decisions, then GRPO on the environment's reward.

Both stages write the same folder layout into ``out``: ``run.json`` (the settings), ``checkpoints/``
(TRL's trainer checkpoints), ``history.json`` (its log), ``curves.png``, ``adapter/`` (the LoRA
adapter, when one is trained) and ``model/``: the product, a complete transformers folder with the
adapter merged and the tokenizer, which the next stage (``--model OUT/model``), the ``transformers``
provider and any OpenAI-compatible server load. ``lora_r = 0`` trains every weight (a small model
built from scratch learns little through an adapter).

**SFT** (:func:`train_sft`): TRL's ``SFTTrainer`` on the records of ``train sft-data`` /
``negotiate sft-data`` (chat messages, the assistant's answer last), the loss on the answer only;
``min_return`` keeps the records of episodes that returned at least that much.

**GRPO** (:func:`train_grpo`): TRL's ``GRPOTrainer`` on a :mod:`~mecharena.llm.tasks` task. Each
step takes ``prompts_per_step`` states and ``num_generations`` completions of each; every
completion is scored on the state its prompt describes, and only differences within a group drive
learning. Sampling is constrained to the answer schema by default (outlines' logits processor in
TRL's ``rollout_func``, as at inference): every completion is then a valid answer, so groups
differ by the choices they make and have reward variance from the first step, where free sampling
from a model that rarely writes valid JSON gives groups of zeros (measured: docs/llm.md).
``format_weight`` adds the format reward to the trained one.

**Interrupts**: the first Ctrl-C saves a checkpoint at the end of the current step and stops
(:class:`Interrupted`); running the same command again resumes from the last checkpoint. A
checkpoint is also written every ``save_steps`` steps. A folder that holds a run with other
settings is refused.
"""

import json
import math
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.llm.tasks import Task, make_task, mean_ci, scores, task_rewards

HELD_OUT = 1_000_000  # held-out evaluation episodes start here (training rows use seed .. seed + prompts - 1)
ROLES = ("system", "user", "assistant")
SAMPLINGS = ("constrained", "free")


class Interrupted(MechArenaError):
    """A training run stopped by Ctrl-C after saving a checkpoint."""


# ----------------------------------------------------------------------------- checks and loading
def _check(name: str, value: Any, low: float, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind | int) or not math.isfinite(value) or value < low:
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'} >= {low}, got {value!r}")


def _check_rate(learning_rate: Any) -> None:
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not learning_rate > 0 \
            or not math.isfinite(learning_rate):
        raise ConfigError(f"learning_rate must be a number > 0, got {learning_rate!r}")


def load(model: str | Path | None, gguf: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local folder, or from a GGUF file (dequantised to a transformers model).

    Raises:
        ConfigError: neither or both given, a folder or file that does not load, or no chat template.
    """
    from mecharena.llm.providers import load_pretrained

    if (model is None) == (gguf is None):
        raise ConfigError("give exactly one of model (a transformers folder) and gguf (a GGUF file)")
    path, name = (Path(gguf).parent, Path(gguf).name) if gguf is not None else (Path(model), None)
    tokenizer, loaded = load_pretrained(path, name)
    if gguf is not None:  # dequantised to float weights: a plain model from here on (trainable, saved as one)
        loaded.hf_quantizer, loaded.is_quantized = None, False
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"the tokenizer in {path} has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return loaded, tokenizer


def context_of(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 1 << 30)


def _check_context(tokenizer: Any, context: int, chats: list[list[dict[str, str]]], answer: int,
                   what: str = "prompt {}") -> None:
    """Every chat plus ``answer`` tokens fits the model's context, or one error naming the first that does not."""
    for i, chat in enumerate(chats):
        length = len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True,
                                                   add_generation_prompt=bool(answer))["input_ids"])
        if length + answer > context:
            raise ConfigError(f"{what.format(i + 1)} takes {length} tokens" + (f" and its answer up to {answer}"
                              if answer else "") + f"; the model's context holds {context}")


def check_sampling(sampling: str) -> str:
    if sampling not in SAMPLINGS:
        raise ConfigError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
    return sampling


def _lora(lora_r: int) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM") if lora_r else None


# ----------------------------------------------------------------------------- runs: settings, checkpoints, interrupts
def _prepare(out: str | Path, settings: dict[str, Any]) -> tuple[Path, str | None]:
    """``out`` created with ``run.json``; the last checkpoint to resume from, if any.

    Raises:
        ConfigError: ``out`` holds a run with other settings, or a finished run.
    """
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(out)
    run = out / "run.json"
    if run.exists():
        before = json.loads(run.read_text())
        changed = [k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
        if changed:
            k = changed[0]
            raise ConfigError(f"{out} holds a run with other settings ({k}: {before.get(k)!r} there, "
                              f"{settings.get(k)!r} now); choose another out folder")
        if (out / "model").exists():
            raise ConfigError(f"{out} holds a finished run (its model/ is written); choose another out folder")
    out.mkdir(parents=True, exist_ok=True)
    run.write_text(json.dumps(settings, indent=1, default=str))
    checkpoints = out / "checkpoints"
    return out, get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def _stopper() -> Any:
    from transformers import TrainerCallback

    class StopOnInterrupt(TrainerCallback):
        """First Ctrl-C: save a checkpoint at the end of the step and stop; a second one stops at once."""

        def __init__(self) -> None:
            self.hit = False
            self.previous: Any = None

        def _handle(self, signum: int, frame: Any) -> None:
            if self.hit:
                raise KeyboardInterrupt
            self.hit = True

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                self.previous = signal.signal(signal.SIGINT, self._handle)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.hit:
                control.should_save = control.should_training_stop = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)

    return StopOnInterrupt()


def _run(trainer: Any, resume: str | None, out: Path, stopper: Any) -> Any:
    """``trainer.train()`` (from ``resume``); :class:`Interrupted` when Ctrl-C stopped it."""
    result = trainer.train(resume_from_checkpoint=resume)
    if stopper.hit:
        raise Interrupted(f"interrupted after step {trainer.state.global_step} of {trainer.state.max_steps}; "
                          f"checkpoint saved in {out / 'checkpoints'}; run the same command again to resume")
    return result


def _save_product(trainer: Any, tokenizer: Any, out: Path) -> Path:
    """``out/adapter`` (a LoRA run) and ``out/model``: the model with the adapter merged, and the tokenizer."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    (out / "history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return out / "model"


def plot_curves(history: list[dict[str, Any]], panels: list[tuple[str, str]], path: Path) -> None:
    """One panel per (log key, title) against the step (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _common(out: Path, seed: int, steps: int, learning_rate: float, save_steps: int) -> dict[str, Any]:
    import torch

    return {"output_dir": str(out / "checkpoints"), "max_steps": steps, "learning_rate": learning_rate,
            "logging_steps": 1, "save_strategy": "steps", "save_steps": save_steps, "save_total_limit": 1,
            "report_to": "none", "seed": seed, "bf16": False, "use_cpu": not torch.cuda.is_available(),
            "dataloader_num_workers": 0, "disable_tqdm": True}


# ----------------------------------------------------------------------------- SFT
def read_records(path: str | Path, min_return: float | None = None) -> list[dict[str, Any]]:
    """The chat records of an SFT file; with ``min_return``, those whose ``episode_return`` reaches it.

    Raises:
        ConfigError: a missing file, a line that is not a record (file, line and what is wrong), or
            no record left after the filter.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"SFT file {path} does not exist")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or len(messages) < 2 or not all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages):
            raise ConfigError(f"{where}: messages must be a list of at least 2 {{role, content}} objects with role "
                              f"in {list(ROLES)}")
        if messages[-1]["role"] != "assistant":
            raise ConfigError(f"{where}: the last message must be the assistant's answer, got {messages[-1]['role']!r}")
        if min_return is not None:
            value = record.get("episode_return")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}: min_return needs a numeric episode_return, got {value!r}")
            if value < min_return:
                continue
        records.append(record)
    if not records:
        raise ConfigError(f"{path}: no record left" + (f" with episode_return >= {min_return}" if min_return is not None
                                                       else ""))
    return records


def train_sft(data: str | Path, out: str | Path, *, model: str | Path | None = None, gguf: str | Path | None = None,
              min_return: float | None = None, steps: int = 200, batch_size: int = 8, learning_rate: float = 2e-4,
              lora_r: int = 8, seed: int = 0, save_steps: int = 50) -> dict[str, Any]:
    """Supervised fine-tuning on an SFT file (see the module docstring); returns a summary.

    Raises:
        ConfigError: an argument out of range, bad records, a model that does not load, or a record
            longer than the model's context.
        Interrupted: Ctrl-C (a checkpoint was saved).
    """
    for name, value, low in [("steps", steps, 1), ("batch_size", batch_size, 1), ("lora_r", lora_r, 0),
                             ("seed", seed, 0), ("save_steps", save_steps, 1)]:
        _check(name, value, low)
    _check_rate(learning_rate)
    records = read_records(data, min_return)
    settings = {"stage": "sft", "data": str(data), "model": str(model), "gguf": str(gguf), "min_return": min_return,
                "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "lora_r": lora_r,
                "seed": seed}
    base, tokenizer = load(model, gguf)
    context = context_of(base)
    _check_context(tokenizer, context, [r["messages"] for r in records], 0, f"record {{}} of {data}")
    out, resume = _prepare(out, settings)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records])
    stopper = _stopper()
    args = SFTConfig(per_device_train_batch_size=batch_size, max_length=context,
                     **_common(out, seed, steps, learning_rate, save_steps))
    trainer = SFTTrainer(model=base, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=_lora(lora_r), callbacks=[stopper])
    result = _run(trainer, resume, out, stopper)
    product = _save_product(trainer, tokenizer, out)
    history = trainer.state.log_history
    plot_curves(history, [("loss", "loss"), ("mean_token_accuracy", "token accuracy")], out / "curves.png")
    losses = [h["loss"] for h in history if "loss" in h]
    return {"records": len(records), "steps": trainer.state.global_step, "resumed_from": resume,
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "train_runtime": result.metrics.get("train_runtime"), "model": str(product), "out": str(out)}


# ----------------------------------------------------------------------------- sampling and evaluation
class ConstrainedSampler:
    """Samples answers held to ``task``'s answer schema (outlines' JSON-schema logits processor, no free
    whitespace); also TRL's ``rollout_func``."""

    def __init__(self, model: Any, tokenizer: Any, choice: type, max_new_tokens: int, temperature: float = 1.0) -> None:
        from mecharena.llm.providers import schema_processor

        self.tokenizer, self.max_new_tokens, self.temperature = tokenizer, max_new_tokens, temperature
        self.processor = schema_processor(model, tokenizer, choice.model_json_schema())

    def generate(self, model: Any, sequences: list[list[int]]) -> tuple[list[list[int]], list[list[float]]]:
        """One answer after each token sequence: its ids (through the first end-of-sequence token) and the
        sampled tokens' log-probabilities under the constrained distribution."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for ids in sequences)
        inputs = torch.tensor([[pad] * (width - len(ids)) + ids for ids in sequences], device=model.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in sequences], device=model.device)
        self.processor.reset()
        with torch.no_grad():
            out = model.generate(input_ids=inputs, attention_mask=attention, max_new_tokens=self.max_new_tokens,
                                 do_sample=True, temperature=self.temperature, top_p=1.0, top_k=0,
                                 logits_processor=[self.processor], pad_token_id=pad, output_scores=True,
                                 return_dict_in_generate=True)
        completions = out.sequences[:, width:]
        logprobs = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, completions[..., None])[..., 0]
        answers, logps = [], []
        for completion, logp in zip(completions, logprobs, strict=True):
            ends = (completion == self.tokenizer.eos_token_id).nonzero()
            keep = int(ends[0, 0]) + 1 if len(ends) else completion.shape[0]
            answers.append(completion[:keep].tolist())
            logps.append(logp[:keep].tolist())
        return answers, logps

    def prompt_ids(self, prompt: list[dict[str, str]]) -> list[int]:
        return list(self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                       return_dict=True)["input_ids"])

    def sample(self, model: Any, prompts: list[list[dict[str, str]]]) -> dict[str, list[list[Any]]]:
        """One completion per prompt: ``prompt_ids``, ``completion_ids`` and ``logprobs`` (TRL's rollout keys)."""
        prompt_ids = [self.prompt_ids(p) for p in prompts]
        answers, logps = self.generate(model, prompt_ids)
        return {"prompt_ids": prompt_ids, "completion_ids": answers, "logprobs": logps}

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list[list[Any]]]:
        return self.sample(trainer.model, prompts)

    def texts(self, model: Any, prompts: list) -> list[str]:
        ids = self.sample(model, prompts)["completion_ids"]
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)


class MultiTurnSampler(ConstrainedSampler):
    """TRL's ``rollout_func`` for episodes of ``turns`` turns: the model answers, the task's env steps
    the answer, the next observation joins the conversation as a user turn, and so on. The
    completion holds every answer and every observation between them; ``env_mask`` keeps the
    observations' tokens out of the loss. The episode's reward (``episode``) is the sum of the
    turns' rewards, each scored on the state that turn saw; the last turn is scored as a one-turn
    completion is (for negotiation: with the expert playing on to the episode's end). ``format``
    is the fraction of the turns answered validly.

    ``rollout_func`` sees the prompts alone: each group's state is looked up by its prompt among
    ``rows`` (rows with the same prompt, the first steps of episodes that differ only in what the
    observation does not show, are taken in turn).
    """

    def __init__(self, model: Any, tokenizer: Any, task: Task, rows: list[dict[str, Any]], turns: int,
                 num_generations: int, max_new_tokens: int, temperature: float = 1.0) -> None:
        super().__init__(model, tokenizer, task.choice, max_new_tokens, temperature)
        self.task, self.turns, self.group = task, turns, num_generations
        self.keys: dict[str, list[tuple]] = {}
        for row in rows:
            self.keys.setdefault(json.dumps(row["prompt"]), []).append(tuple(row[c] for c in task.columns))
        self.drawn = 0

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list[Any]]:
        states = []
        for start in range(0, len(prompts), self.group):
            matches = self.keys[json.dumps(prompts[start])]
            states += [self.task.state(matches[self.drawn % len(matches)])] * len(prompts[start:start + self.group])
            self.drawn += 1
        return self.play(trainer.model, prompts, states)

    def play(self, model: Any, prompts: list, states: list[Any]) -> dict[str, list[Any]]:
        """Every prompt's episode from its state, all in step (one ``generate`` per turn)."""
        tokenizer = self.tokenizer
        n = len(prompts)
        chats = [list(p) for p in prompts]
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
        prompt_ids = [self.prompt_ids(p) for p in prompts]
        completion: list[list[int]] = [[] for _ in range(n)]
        mask: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        returns, valid = [0.0] * n, [[] for _ in range(n)]
        live = list(range(n))
        for turn in range(self.turns):
            if turn:
                for i in live:  # the next observation, as the tokens the template adds after the answer
                    chats[i].append({"role": "user", "content": self.task.prompt_of(states[i])[-1]["content"]})
                    text = tokenizer.apply_chat_template(chats[i], add_generation_prompt=True, tokenize=False)
                    if not text.startswith(texts[i]):
                        raise ConfigError("multi-turn rollouts need a chat template that extends a conversation "
                                          "without rewriting its earlier turns")
                    added = tokenizer(text[len(texts[i]):], add_special_tokens=False)["input_ids"]
                    completion[i] += added
                    mask[i] += [0] * len(added)
                    logps[i] += [0.0] * len(added)
                    texts[i] = text
            answers, answer_logps = self.generate(model, [prompt_ids[i] + completion[i] for i in live])
            for i, ids, lp in zip(live, answers, answer_logps, strict=True):
                text = tokenizer.decode(ids, skip_special_tokens=True)
                completion[i] += ids
                mask[i] += [1] * len(ids)
                logps[i] += lp
                texts[i] += tokenizer.decode(ids, skip_special_tokens=False)
                chats[i].append({"role": "assistant", "content": text})
                if turn == self.turns - 1:
                    scored = self.task.score(states[i], text)
                    valid[i].append(scored["format"] == 1.0)
                    returns[i] += scored[self.task.trained]
                else:
                    states[i], reward, done, ok = self.task.advance(states[i], text)
                    valid[i].append(ok)
                    returns[i] += reward
                    if done:
                        live = [j for j in live if j != i]
        return {"prompt_ids": prompt_ids, "completion_ids": completion, "logprobs": logps, "env_mask": mask,
                "episode": returns, "turns_valid": [float(np.mean(v)) for v in valid]}


class RolloutReward:
    """A reward the multi-turn rollout computed (an extra field TRL hands every reward function)."""

    def __init__(self, name: str, field: str) -> None:
        self.__name__, self.field = name, field

    def __call__(self, prompts: list | None, completions: list, **columns: Any) -> list[float]:
        return [float(x) for x in columns[self.field]]


def evaluate(model: Any, sampler: ConstrainedSampler, task: Task, rows: list[dict[str, Any]], *, samples: int = 4,
             seed: int = 0, batch: int = 32) -> dict[str, Any]:
    """``samples`` constrained answers per row (episodes of its turns, for a :class:`MultiTurnSampler`):
    per-row means of the trained reward (the episode's) and of ``format``; ``valid`` is the share of
    answers that were valid (of episodes all of whose answers were, for several turns)."""
    import torch

    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    repeated = [row for row in rows for _ in range(samples)]
    if isinstance(sampler, MultiTurnSampler):  # whole episodes of the sampler's turns
        reward, fmt = [], []
        for at in range(0, len(repeated), batch):
            chunk = repeated[at: at + batch]
            played = sampler.play(model, [row["prompt"] for row in chunk],
                                  [task.state(tuple(row[c] for c in task.columns)) for row in chunk])
            reward += played["episode"]
            fmt += played["turns_valid"]
        scored = [{task.trained: r, "format": f} for r, f in zip(reward, fmt, strict=True)]
    else:
        texts: list[str] = []
        for at in range(0, len(repeated), batch):
            texts += sampler.texts(model, [row["prompt"] for row in repeated[at: at + batch]])
        scored = scores(task, repeated, texts)
    model.train(was_training)
    trained = np.array([s[task.trained] for s in scored]).reshape(len(rows), samples).mean(axis=1)
    fmt = np.array([s["format"] for s in scored]).reshape(len(rows), samples).mean(axis=1)
    return {"reward": trained.tolist(), "format": fmt.tolist(), "mean": float(trained.mean()),
            "valid": float(np.mean([s["format"] == 1.0 for s in scored]))}


def gain(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """The paired held-out gain (same rows) with its 95% interval."""
    mean, low, high = mean_ci(np.array(after["reward"]) - np.array(before["reward"]))
    return {"mean": mean, "low": low, "high": high}


def groups_with_variance(history: list[dict[str, Any]]) -> float | None:
    """The fraction of GRPO groups whose rewards were not all equal, over the logged steps."""
    zero = [h["frac_reward_zero_std"] for h in history if "frac_reward_zero_std" in h]
    return 1.0 - float(np.mean(zero)) if zero else None


# ----------------------------------------------------------------------------- GRPO
def train_grpo(out: str | Path, *, model: str | Path | None = None, gguf: str | Path | None = None,
               task: "str | Task" = "designer:2", prompts: int = 64, steps: int = 50, num_generations: int = 4,
               prompts_per_step: int = 4, max_completion_length: int = 160, learning_rate: float = 1e-4,
               lora_r: int = 8, beta: float = 0.0, temperature: float = 1.0, sampling: str = "constrained",
               format_weight: float = 0.0, turns: int = 1, seed: int = 0, save_steps: int = 10, eval_prompts: int = 0,
               eval_samples: int = 4, use_vllm: bool = False) -> dict[str, Any]:
    """GRPO on ``task`` (a spec of :func:`~mecharena.llm.tasks.make_task`, or any object with the
    :class:`~mecharena.llm.tasks.DesignerTask` interface; see the module docstring); returns a summary.

    With ``turns`` > 1 each completion is an episode of that many turns (:class:`MultiTurnSampler`),
    trained on its ``episode`` reward. With ``eval_prompts`` > 0, ``eval_samples`` constrained answers
    to each of ``eval_prompts`` held-out states (episodes never trained on) are scored before and
    after training (whole episodes with ``turns`` > 1), and the
    summary gives the paired gain with its 95% interval.

    Raises:
        ConfigError: an argument out of range, or a model that does not load.
        UnknownIdError: an unknown task.
        Interrupted: Ctrl-C (a checkpoint was saved).
    """
    job = make_task(task) if isinstance(task, str) else task
    for name, value, low in [("prompts", prompts, 1), ("steps", steps, 1), ("num_generations", num_generations, 2),
                             ("prompts_per_step", prompts_per_step, 1),
                             ("max_completion_length", max_completion_length, 1), ("lora_r", lora_r, 0),
                             ("turns", turns, 1), ("seed", seed, 0), ("save_steps", save_steps, 1),
                             ("eval_prompts", eval_prompts, 0),
                             ("eval_samples", eval_samples, 1)]:
        _check(name, value, low)
    for name, value in [("beta", beta), ("format_weight", format_weight), ("temperature", temperature)]:
        _check(name, value, 0.0, float)
    _check_rate(learning_rate)
    check_sampling(sampling)
    if sampling == "constrained" and use_vllm:
        raise ConfigError("constrained sampling runs in transformers' generate; with vLLM choose sampling 'free'")
    if turns > 1 and sampling != "constrained":
        raise ConfigError(f"turns > 1 plays episodes with constrained sampling; got sampling {sampling!r}")
    settings = {"stage": "grpo", "model": str(model), "gguf": str(gguf), "task": job.name, "prompts": prompts,
                "steps": steps, "num_generations": num_generations, "prompts_per_step": prompts_per_step,
                "max_completion_length": max_completion_length, "learning_rate": learning_rate, "lora_r": lora_r,
                "beta": beta, "temperature": temperature, "sampling": sampling, "format_weight": format_weight,
                "turns": turns, "seed": seed}
    base, tokenizer = load(model, gguf)
    rows = job.rows(prompts, seed)
    held_out = job.rows(eval_prompts, HELD_OUT + seed) if eval_prompts else []
    _check_context(tokenizer, context_of(base), [row["prompt"] for row in rows + held_out], max_completion_length)
    out, resume = _prepare(out, settings)
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    dataset = Dataset.from_list(rows)
    if turns > 1:
        sampler: ConstrainedSampler = MultiTurnSampler(base, tokenizer, job, rows + held_out, turns, num_generations,
                                                       max_completion_length, temperature)
        rewards: list[Any] = [RolloutReward("format", "turns_valid"), RolloutReward("episode", "episode")]
        weights = [format_weight, 1.0]
    else:
        sampler = ConstrainedSampler(base, tokenizer, job.choice, max_completion_length, temperature)
        rewards = task_rewards(job)
        weights = [1.0 if name == job.trained else format_weight if name == "format" else 0.0 for name in job.rewards]
    before_path = out / "eval_before.json"
    if held_out and not before_path.exists():  # a resumed run keeps the first run's starting point
        before_path.write_text(json.dumps(evaluate(base, sampler, job, held_out, samples=eval_samples, seed=seed)))
    stopper = _stopper()
    args = GRPOConfig(per_device_train_batch_size=num_generations * prompts_per_step, num_generations=num_generations,
                      max_completion_length=max_completion_length, beta=beta, temperature=temperature,
                      reward_weights=weights, gradient_checkpointing=False, use_vllm=use_vllm,
                      **_common(out, seed, steps, learning_rate, save_steps))
    trainer = GRPOTrainer(model=base, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=_lora(lora_r), callbacks=[stopper],
                          rollout_func=sampler if sampling == "constrained" else None)
    result = _run(trainer, resume, out, stopper)
    history = trainer.state.log_history
    logged = [h for h in history if "reward" in h]
    summary = {"task": job.name, "steps": trainer.state.global_step, "resumed_from": resume,
               "sampling": sampling, "turns": turns, "groups_with_variance": groups_with_variance(history),
               "first_reward": logged[0]["reward"] if logged else None,
               "final_reward": logged[-1]["reward"] if logged else None,
               "train_runtime": result.metrics.get("train_runtime")}
    if held_out:
        before = json.loads(before_path.read_text())
        after = evaluate(trainer.model, sampler, job, held_out, samples=eval_samples, seed=seed)
        (out / "eval_after.json").write_text(json.dumps(after))
        summary["held_out"] = {"prompts": eval_prompts, "samples": eval_samples, "before": before["mean"],
                               "after": after["mean"], "gain": gain(before, after),
                               "valid_before": before["valid"], "valid_after": after["valid"]}
    summary["model"] = str(_save_product(trainer, tokenizer, out))
    plot_curves(history, [("reward", "reward"), ("reward_std", "reward std"),
                          ("frac_reward_zero_std", "groups without variance"),
                          ("completions/mean_length", "completion length")], out / "curves.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary | {"out": str(out)}


__all__ = ["ConstrainedSampler", "Interrupted", "check_sampling", "evaluate", "gain", "groups_with_variance", "load",
           "read_records", "train_grpo", "train_sft"]
