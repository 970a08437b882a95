"""Attention for packed rows (`--attention varlen`): FlashAttention's variable-length kernel
(torch.nn.attention.varlen, CUDA only) runs causal attention within each packed example, so
neither the other examples in the row nor the row's padding cost any attention compute.
Without it a packed row takes SDPA with a dense block-diagonal mask: every query against
every key of the row, then masked.

The language model's attention is swapped through transformers' AttentionInterface; `pack`
(train_min/data.py) gives each batch the examples' boundaries as `cu_seq_lens_q` (cumulative
lengths over the flattened rows) and `max_length_q`, which transformers hands to every
attention call. A batch without them (evaluation batches, collated unpadded) takes SDPA
with the mask transformers builds, as before."""

from __future__ import annotations

import inspect
import itertools

import torch

NAME = "train_min_varlen"


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


_ARGS: frozenset = frozenset()  # varlen_attn's parameter names in this torch, read once by use_varlen


def use_varlen(model, packed: bool, device: str) -> None:
    """Register the attention with transformers (once) and make it the language model's; a
    vision tower keeps its own (its images are never packed). Packed batches on CUDA only."""
    if not packed or device != "cuda":
        raise ValueError("--attention varlen runs packed batches (--pack) on CUDA: its kernel is FlashAttention's")
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(NAME, varlen_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # the unpacked batches' padding masks, as for SDPA
    from torch.nn.attention.varlen import varlen_attn

    global _ARGS
    _ARGS = frozenset(inspect.signature(varlen_attn).parameters)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(inner.config, "text_config"):
        inner.set_attn_implementation({"text_config": NAME})
    else:
        inner.set_attn_implementation(NAME)


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
