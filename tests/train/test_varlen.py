"""--attention varlen: the examples' boundaries a packed batch carries, and the language
model's attention routed through them. FlashAttention's varlen kernel runs on CUDA only, so
on the CPU a reference (causal SDPA over each segment alone) stands in for it here; the GPU
bench runs the real kernel and compares its losses with the packed SDPA run's."""

import pytest
import torch
import torch.nn.functional as F

from train_min.attention import segments, set_attention
from train_min.data import pack
from train_min.train import TrainConfig, train


def _examples(lengths, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(5, vocab, (n,), generator=g)
        out.append({"input_ids": ids, "labels": ids.clone(), "n_targets": n - 1})
    return out


def test_segments_cover_every_token_of_every_row_once():
    assert segments([[3, 4], [5]], 8).tolist() == [0, 3, 7, 8, 13, 16]  # row 0: two examples and 1 padding; row 1: 5 + 3
    assert segments([[4, 4], [8]], 8).tolist() == [0, 4, 8, 16]  # full rows: no padding segment


def test_a_packed_batch_carries_boundaries_where_the_positions_restart():
    batch = pack(_examples([5, 9, 3, 7, 2]), pad_id=0, length=12, multiple=4, varlen=True)
    rows, width = batch["input_ids"].shape
    assert batch["max_length_q"] == width
    starts = set(batch["cu_seq_lens_q"][:-1].tolist())
    assert starts == {i for i, p in enumerate(batch["position_ids"].reshape(-1).tolist()) if p == 0}
    assert batch["cu_seq_lens_q"][-1] == rows * width and batch["cu_seq_lens_q"].dtype == torch.int32
    assert "cu_seq_lens_q" not in pack(_examples([5, 9]), pad_id=0, length=12)


def _segments_attention(q, k, v, cu_q, causal, scale=None, enable_gqa=False):
    outs = []
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        qs, ks, vs = (x[a:b].transpose(0, 1) for x in (q, k, v))
        outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal, scale=scale, enable_gqa=enable_gqa).transpose(0, 1))
    return torch.cat(outs)


def _reference_varlen(calls, old: bool):
    """The kernel's reference, with the arguments of torch 2.13 or (old) of its first release
    (a causal flag, no scale, no grouped-query heads)."""
    def new_api(q, k, v, cu_q, cu_k, max_q, max_k, *, return_aux=None, scale=None, window_size=(-1, -1), enable_gqa=False):
        calls.append((max_q, window_size == (-1, 0)))
        return _segments_attention(q, k, v, cu_q, window_size == (-1, 0), scale, enable_gqa)

    def old_api(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=False, return_aux=None):
        assert q.shape[1] == k.shape[1], "the first varlen_attn has no grouped-query heads"
        calls.append((max_q, is_causal))
        return _segments_attention(q, k, v, cu_q, is_causal)

    return old_api if old else new_api


@pytest.mark.parametrize("old", [False, True], ids=["torch-2.13-api", "first-api"])
def test_packed_varlen_hidden_states_equal_each_example_run_alone(tiny_llama, monkeypatch, old):
    from transformers import AutoConfig, AutoModelForCausalLM

    calls = []
    monkeypatch.setattr("torch.nn.attention.varlen.varlen_attn", _reference_varlen(calls, old))
    config = AutoConfig.from_pretrained(tiny_llama)
    config.num_attention_heads, config.num_key_value_heads = 4, 2  # grouped-query: each key/value head serves 2 query heads
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    set_attention(model, "varlen", packed=True)  # the kernel's reference runs on the CPU
    examples = _examples([6, 11, 4, 9], vocab=model.config.vocab_size)
    batch = pack(examples, pad_id=0, length=16, varlen=True)
    with torch.no_grad():
        packed = model.model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).last_hidden_state
        alone = [model.model(input_ids=e["input_ids"][None], use_cache=False).last_hidden_state[0] for e in examples]
    layers = model.config.num_hidden_layers
    assert calls == [(batch["input_ids"].shape[1], True)] * layers  # causal, every layer
    flat, bounds = packed.reshape(-1, packed.shape[-1]), batch["cu_seq_lens_q"].tolist()
    found = {n: flat[a:b] for a, b in zip(bounds[:-1], bounds[1:]) for n in [b - a]}
    for e, h in zip(examples, alone):  # every example's tokens, wherever the packer put them, as if alone
        assert torch.allclose(found[len(e["input_ids"])], h, atol=1e-5)


def test_varlen_is_refused_unpacked_or_off_cuda(tmp_path, tiny_llama):
    base = dict(task="reasoner", model=str(tiny_llama), data=str(tmp_path), out=str(tmp_path / "o"), device="cpu", progress=False)
    with pytest.raises(ValueError, match="--pack"):
        train(TrainConfig(**base, attention="varlen", pack=64))
    with pytest.raises(ValueError, match="attention: 'flash' is not one of sdpa, varlen, masked"):
        train(TrainConfig(**base, attention="flash"))
