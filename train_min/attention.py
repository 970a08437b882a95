"""Attention without dense masks. transformers builds a dense (B, 1, T, T) mask for SDPA
whenever a padding mask is passed and it is tracing (under torch.compile it cannot look
whether the mask is all ones), and SDPA with a dense mask runs every query against every
key: no flash kernel, no skipped causal blocks. train_min knows more than transformers does:

- an unpacked batch is right-padded, so under the causal mask a real token never sees the
  padding after it, and the padding's own outputs carry no target: the language model runs
  causal SDPA with no mask (`UNMASKED`), exactly;
- when no example's image has padded patches (`pixel_attention_mask` all ones, read once
  from the encoded data), the vision tower's mask is all ones: it runs SDPA with no mask.

Packed rows keep their block-diagonal mask (SDPA with it: every query against every key of
the row, then masked), or take `--attention varlen`: FlashAttention's variable-length
kernel (torch.nn.attention.varlen, CUDA only) runs causal attention within each packed
example, so neither the other examples in the row nor the row's padding cost any attention
compute. `--attention masked` keeps transformers' own masks everywhere.

Each tower's attention is swapped through transformers' AttentionInterface; for varlen, `pack`
(train_min/data.py) gives each batch the examples' boundaries as `cu_seq_lens_q` (cumulative
lengths over the flattened rows) and `max_length_q`, which transformers hands to every
attention call. A batch without them (evaluation batches, collated unpacked) takes SDPA
with the mask transformers builds."""

from __future__ import annotations

import inspect
import itertools

import torch

NAME = "train_min_varlen"
UNMASKED = "train_min_unmasked"


def unmasked_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA with no mask: causal where the module is (the language model), full otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, None, **kwargs)


def no_mask(*args, **kwargs) -> None:
    """transformers' mask function for UNMASKED: no mask is built at all."""
    return None


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention signature: query (B, Hq, T, D), key and value (B, Hkv, T, D);
    returns (B, T, Hq, D) and no weights."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    from torch.nn.attention.varlen import varlen_attn

    b, hq, t, d = query.shape
    # under autocast the rotary embedding leaves q and k in fp32; the kernel takes bf16/fp16 only
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else query.dtype

    def flat(x):
        return x.transpose(1, 2).reshape(b * t, x.shape[1], d).to(dtype)

    k, v, kw = flat(key), flat(value), {}
    # torch's varlen_attn grew its arguments over releases: causal by window or flag, scale, GQA
    kw.update({"window_size": (-1, 0)} if "window_size" in _ARGS else {"is_causal": True})
    if "scale" in _ARGS:
        kw["scale"] = scaling
    elif scaling is not None and abs(scaling - d**-0.5) > 1e-9:
        raise ValueError(f"this torch's varlen_attn scales by 1/sqrt(head_dim) only, the model by {scaling}")
    if key.shape[1] != hq:
        if "enable_gqa" in _ARGS:
            kw["enable_gqa"] = True
        else:  # each key/value head serves hq / hkv query heads in a row, as transformers' repeat_kv
            k, v = (x.repeat_interleave(hq // key.shape[1], dim=1) for x in (k, v))
    width = kwargs["max_length_q"]
    out = varlen_attn(flat(query), k, v, cu, cu, width, width, **kw)
    return out.view(b, t, hq, d), None


_ARGS: frozenset = frozenset()  # varlen_attn's parameter names in this torch, read once by set_attention


def full_attention(config) -> bool:
    """Whether every layer attends to all earlier tokens (no sliding window, which needs its mask)."""
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return not getattr(config, "sliding_window", None) or getattr(config, "use_sliding_window", True) is False


def set_attention(model, attention: str, packed: bool, pixel_masks_full: bool = False) -> dict[str, str]:
    """Each tower's attention for this run (see the module docstring); returns {sub-config:
    attention} for the towers changed. `attention`: sdpa | varlen (packed batches on CUDA:
    train() refuses it otherwise) | masked (transformers' own masks: nothing changed, for a
    model family whose masks this does not know). `pixel_masks_full`: every image of the
    run has an attention mask of all ones (no padded patches), so the vision tower needs none."""
    if attention == "masked":
        return {}
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(NAME, varlen_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # the unpacked batches' padding masks, as for SDPA
        AttentionInterface.register(UNMASKED, unmasked_attention)
        AttentionMaskInterface.register(UNMASKED, no_mask)
    if attention == "varlen":
        from torch.nn.attention.varlen import varlen_attn

        global _ARGS
        _ARGS = frozenset(inspect.signature(varlen_attn).parameters)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    text_config = getattr(inner.config, "text_config", inner.config)
    chosen = {}
    if attention == "varlen":
        chosen["text_config"] = NAME
    elif not packed and full_attention(text_config):
        chosen["text_config"] = UNMASKED
    if hasattr(inner.config, "vision_config") and pixel_masks_full:
        chosen["vision_config"] = UNMASKED
    if not hasattr(inner.config, "text_config") and chosen:
        inner.set_attn_implementation(chosen["text_config"])
    elif chosen:
        inner.set_attn_implementation(chosen)
    return chosen


def segments(lengths_per_row: list[list[int]], width: int) -> torch.Tensor:
    """cu_seq_lens over rows of `width` tokens flattened one after another: each example
    its own segment, and each row's padding one more (attended within itself, never a
    target), so every token is in exactly one segment. int32, as the kernel takes them."""
    bounds = [0]
    for i, lengths in enumerate(lengths_per_row):
        start = bounds[-1]
        bounds += [start + n for n in itertools.accumulate(lengths)]
        if bounds[-1] < (i + 1) * width:
            bounds.append((i + 1) * width)
    return torch.tensor(bounds, dtype=torch.int32)
