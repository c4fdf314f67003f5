"""GRPO fine-tuning of the LLM designer (TRL ``GRPOTrainer`` with a LoRA adapter).

Each dataset row is one designer state: the chat prompt :func:`mecharena.llm.designer.prompt`
builds from its observation vector, and the columns that rebuild that exact state
(``stage``, episode ``seed``, ``population`` and ``history``, the JSON list of actions replayed
after ``reset``). TRL samples ``num_generations`` completions per prompt and hands every reward
function the row's columns next to each completion, so each completion is scored on the state its
own prompt describes: the state is rebuilt (reset, then replay), the parsed action is stepped,
and the env's reward is the completion's reward.

Rewards (one callable each, logged by TRL as ``rewards/<name>/mean``):

* ``format``: 1 for a valid :class:`~mecharena.llm.designer.DesignerChoice`, 0.5 for a JSON
  object that is not one, 0 for no JSON object;
* ``welfare``, ``fairness``, ``participation``, ``stability``: the step's components;
* ``composite``: the step's reward (the mean over its scored rounds of the components' product); 0
  for an unparsable completion.

Only ``composite`` is trained on (weight 1); the others have weight 0: logged, not optimised.
GRPO's advantage is the composite reward minus its group mean over the ``num_generations``
completions of one prompt (scaled by the group's std), so only differences between completions
of the same state drive learning.
"""

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.designer.action import MechanismAction
from mecharena.designer.core import COMPONENTS
from mecharena.designer.env import DesignerEnv, population_seeds
from mecharena.designer.policies import menu
from mecharena.designer.population import check_stage
from mecharena.llm.designer import DesignerChoice, parse_choice, prompt
from mecharena.llm.structured import first_json_object

MAX_HISTORY = 3  # replayed steps before a row's state: 0..3
REWARD_NAMES = ("format", *COMPONENTS, "composite")
StateKey = tuple[int, int, int, str]  # (stage, seed, population, history JSON)


# ----------------------------------------------------------------------------- dataset
def rebuild(stage: int, seed: int, population: int, history: str) -> DesignerEnv:
    """The exact state a row describes: ``reset(seed, population)``, then replay ``history``."""
    env = DesignerEnv(int(stage))
    env.reset(seed=int(seed), population=int(population))
    for action in json.loads(history):
        env.step(action)
    return env


def state_row(stage: int, seed: int, history: list[MechanismAction] | tuple = ()) -> dict[str, Any]:
    """One dataset row: the prompt for episode ``seed`` after ``history`` and the columns that rebuild it."""
    population = population_seeds(seed, 1)[0]
    replayed = json.dumps([a.model_dump(mode="json", exclude_none=True) for a in history])
    env = rebuild(stage, seed, population, replayed)
    return {"prompt": prompt(env.vector()), "stage": int(stage), "seed": int(seed), "population": int(population),
            "history": replayed}


def grpo_dataset(stage: int, prompts: int, seed: int = 0):
    """``prompts`` rows (a :class:`datasets.Dataset`) of stage ``stage``.

    Row ``i`` is episode ``seed + i`` after ``i % 4`` steps of a seeded random history drawn from the
    designer menu (:func:`mecharena.designer.policies.menu`), so prompts cover first and later steps.

    Columns: ``prompt`` (chat messages), ``stage``, ``seed``, ``population``, ``history`` (a JSON
    string: a list of dicts with different keys would be unified into one Arrow struct with nulls).

    Raises:
        ConfigError: ``stage`` not in 1..5, ``prompts`` < 1 or ``seed`` < 0.
    """
    from datasets import Dataset

    check_stage(stage)
    _check("prompts", prompts, 1)
    _check("seed", seed, 0)
    options = [action for _, action in menu()]
    rng = np.random.default_rng([seed, 13])
    rows = []
    for i in range(prompts):
        steps = i % (MAX_HISTORY + 1)
        history = [options[int(j)] for j in rng.integers(0, len(options), steps)]
        rows.append(state_row(stage, seed + i, history))
    return Dataset.from_list(rows)


# ----------------------------------------------------------------------------- rewards
def completion_text(completion: Any) -> str:
    """The text of one completion (conversational completions are ``[{"role": "assistant", ...}]``)."""
    if isinstance(completion, list):
        return str(completion[-1]["content"]) if completion else ""
    return str(completion)


def score(env: DesignerEnv, text: str) -> dict[str, float]:
    """Format, components and composite of ``text`` stepped from ``env``'s state (``env`` is not changed)."""
    action, _ = parse_choice(text)
    if action is None:
        fmt = 0.5 if first_json_object(text) is not None else 0.0
        return {"format": fmt, "composite": 0.0} | {c: 0.0 for c in COMPONENTS}
    _, reward, _, info = copy.copy(env).step(action)  # step replaces state (pure core): a shallow copy suffices
    return {"format": 1.0, "composite": reward} | {c: info[c] for c in COMPONENTS}


class DesignerReward:
    """One reward for :class:`trl.GRPOTrainer`; TRL logs it as ``rewards/<__name__>/mean``.

    A callable object (not a partial) so that each has its own ``__name__``. Every call rebuilds
    each distinct row state once (the ``num_generations`` completions of a prompt share it) and
    checks that the rebuilt state renders the prompt the completion answered.
    """

    def __init__(self, name: str) -> None:
        if name not in REWARD_NAMES:
            raise ConfigError(f"reward must be one of {list(REWARD_NAMES)}, got {name!r}")
        self.__name__ = self.name = name

    def __call__(self, prompts: list, completions: list, stage: list, seed: list, population: list,
                 history: list, **kwargs: Any) -> list[float]:
        states: dict[StateKey, DesignerEnv] = {}
        scores: dict[tuple[StateKey, str], float] = {}
        out = []
        for i, completion in enumerate(completions):
            key = (int(stage[i]), int(seed[i]), int(population[i]), str(history[i]))
            if key not in states:
                states[key] = rebuild(*key)
                if prompts is not None and prompts[i] != prompt(states[key].vector()):
                    raise ConfigError(f"row {i}: the prompt does not describe the state its columns rebuild "
                                      f"(stage={key[0]}, seed={key[1]}, history={key[3]})")
            text = completion_text(completion)
            if (key, text) not in scores:
                scores[key, text] = score(states[key], text)[self.name]
            out.append(scores[key, text])
        return out


def rewards() -> list[DesignerReward]:
    """The reward callables in :data:`REWARD_NAMES` order."""
    return [DesignerReward(name) for name in REWARD_NAMES]


def reward_weights() -> list[float]:
    """Composite 1, everything else 0 (logged, not trained on)."""
    return [1.0 if name == "composite" else 0.0 for name in REWARD_NAMES]


# ----------------------------------------------------------------------------- training
def _check(name: str, value: Any, low: float, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind | int) or not math.isfinite(value) or value < low:
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'} >= {low}, got {value!r}")


def _warmup(model: Any, tokenizer: Any, dataset: Any, steps: int, learning_rate: float, seed: int) -> float:
    """Supervised steps on prompt -> a menu action's JSON, through the adapter (a random-weight model
    never emits JSON, so every reward would be 0 and the GRPO loss exactly 0). Returns the last loss."""
    import torch

    rng = np.random.default_rng([seed, 17])
    targets = [DesignerChoice.of(a).model_dump_json() for _, a in menu()]
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in dataset["prompt"]]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    loss = float("nan")
    eos = tokenizer.eos_token or ""
    for _ in range(steps):
        text = texts[int(rng.integers(len(texts)))]
        target = targets[int(rng.integers(len(targets)))] + eos
        context = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        answer = tokenizer(target, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([context, answer], dim=1).to(model.device)
        labels = ids.clone()
        labels[:, : context.shape[1]] = -100  # loss on the answer only
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = float(out.loss.detach())
    model.eval()
    return loss


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Reward, reward std, KL and mean completion length against the step (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged = [h for h in history if "reward" in h]
    panels = [("reward", "reward"), ("reward_std", "reward std"), ("kl", "KL"),
              ("completions/mean_length", "completion length")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (key, title) in zip(axes, panels, strict=True):
        points = [(h["step"], h[key]) for h in logged if key in h]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o")
        ax.set_title(title)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train_grpo(model_dir: str | Path, out_dir: str | Path, *, stage: int = 2, prompts: int = 8, steps: int = 3,
               num_generations: int = 4, max_completion_length: int = 128, learning_rate: float = 5e-5,
               lora_r: int = 8, beta: float = 0.04, seed: int = 0, use_vllm: bool = False,
               warmup_sft_steps: int = 0) -> dict[str, Any]:
    """GRPO with a LoRA adapter on the designer prompts of ``stage``.

    Each step takes two prompts (one when ``prompts`` is 1) and ``num_generations`` completions of
    each. Writes ``history.json`` (TRL's ``log_history``), ``curves.png`` and the adapter
    (``adapter/``) into ``out_dir``.

    Args:
        model_dir: a local causal LM folder (or hub id) with a tokenizer that has a chat template.
        out_dir: created if missing.
        stage: curriculum stage 1..5 of the prompts' states.
        prompts: dataset rows (see :func:`grpo_dataset`).
        steps: optimiser steps.
        num_generations: completions per prompt (the GRPO group), >= 2.
        max_completion_length: tokens per completion.
        learning_rate: for the adapter (GRPO and the warm-up).
        lora_r: LoRA rank (alpha = 2 r, on q_proj and v_proj).
        beta: KL coefficient against the base model (the adapter disabled).
        seed: dataset, sampling and initialisation seed.
        use_vllm: generate with vLLM (GPU machines; passed to ``GRPOConfig``).
        warmup_sft_steps: supervised steps (one example each) teaching the answer format first.

    Returns:
        ``steps``, ``final_reward``, ``mean_reward``, ``final_format``, ``final_composite``,
        ``train_runtime``, ``warmup_loss`` and the written paths.

    Raises:
        ConfigError: an argument out of range, or ``model_dir`` missing.
    """
    check_stage(stage)
    for name, value, low in [("prompts", prompts, 1), ("steps", steps, 1), ("num_generations", num_generations, 2),
                             ("max_completion_length", max_completion_length, 1), ("lora_r", lora_r, 1),
                             ("seed", seed, 0), ("warmup_sft_steps", warmup_sft_steps, 0)]:
        _check(name, value, low)
    _check("beta", beta, 0.0, float)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not learning_rate > 0 \
            or not math.isfinite(learning_rate):
        raise ConfigError(f"learning_rate must be a number > 0, got {learning_rate!r}")
    if Path(model_dir).anchor and not Path(model_dir).exists():
        raise ConfigError(f"model_dir must be an existing folder, got {str(model_dir)!r}")
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as exc:  # pragma: no cover - the train extra is missing
        raise ConfigError(f"GRPO training needs the train extra (pip install 'mecharena[train]'): {exc}") from exc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:
        raise ConfigError(f"the tokenizer in {str(model_dir)!r} has no chat template")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # the adapter is made here rather than by the trainer, so that the warm-up trains the same adapter
    lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    dataset = grpo_dataset(stage, prompts, seed)
    warmup_loss = _warmup(model, tokenizer, dataset, warmup_sft_steps, learning_rate, seed) if warmup_sft_steps \
        else None

    per_step = num_generations * min(2, prompts)
    args = GRPOConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=per_step, num_generations=num_generations,
        max_completion_length=max_completion_length, max_steps=steps, learning_rate=learning_rate, beta=beta,
        reward_weights=reward_weights(), logging_steps=1, save_strategy="no", report_to="none", seed=seed,
        bf16=False, gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(), use_vllm=use_vllm,
        dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=rewards(), args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    result = trainer.train()
    history = trainer.state.log_history
    (out / "history.json").write_text(json.dumps(history, indent=1))
    plot_curves(history, out / "curves.png")
    trainer.save_model(str(out / "adapter"))
    logged = [h for h in history if "reward" in h]
    return {
        "steps": len(logged),
        "final_reward": logged[-1]["reward"] if logged else None,
        "mean_reward": float(np.mean([h["reward"] for h in logged])) if logged else None,
        "final_format": logged[-1].get("rewards/format/mean") if logged else None,
        "final_composite": logged[-1].get("rewards/composite/mean") if logged else None,
        "train_runtime": result.metrics.get("train_runtime"),
        "warmup_loss": warmup_loss,
        "history": str(out / "history.json"), "curves": str(out / "curves.png"), "adapter": str(out / "adapter"),
    }


__all__ = ["REWARD_NAMES", "DesignerReward", "grpo_dataset", "rebuild", "reward_weights", "rewards", "score",
           "state_row", "train_grpo"]
