"""Attention without dense masks (train_min/attention.py): on train_min's right-padded
batches the language model runs causal SDPA with no mask, and a vision tower whose images
have no padded patches runs SDPA with no mask. Every real token's output must be what the
masked model gives; the masks stay wherever they change a real token's output."""

import io
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from train_min.attention import UNMASKED, full_attention, set_attention
from train_min.data import Encoder, collate


def _png(seed: int) -> dict:
    b = io.BytesIO()
    Image.fromarray((np.random.RandomState(seed).rand(64, 48, 3) * 255).astype("uint8")).save(b, "PNG")
    return {"bytes": b.getvalue()}


def test_unmasked_towers_give_every_real_token_the_masked_output(tiny_idefics3, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    encode = Encoder(processor, "perception", 320)
    examples = [encode({"image": _png(i), "prompt": "what is here " * n, "extraction": "a red cup " * n}) for i, n in enumerate([1, 6])]
    batch = collate(examples, processor.tokenizer.pad_token_id)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    real = batch["attention_mask"].bool()
    assert not real.all()  # the short example is right-padded
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32).eval()
    with torch.no_grad():
        masked = model.model(**inputs, use_cache=False).last_hidden_state
        full = all(bool(e["pixel_attention_mask"].all()) for e in examples)
        assert full and set_attention(model, "sdpa", packed=False, pixel_masks_full=full) == {"text_config": UNMASKED, "vision_config": UNMASKED}
        unmasked = model.model(**inputs, use_cache=False).last_hidden_state
    assert torch.allclose(unmasked[real], masked[real], atol=1e-5)
    assert not torch.allclose(unmasked[~real], masked[~real], atol=1e-3)  # the padding now attends unmasked: the switch took
    model.save_pretrained(tmp_path / "saved")  # a saved model carries the stock attention
    assert UNMASKED not in (tmp_path / "saved" / "config.json").read_text()


def test_masks_stay_where_they_change_real_tokens(tiny_idefics3, tiny_llama):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    vlm = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    # packed rows need their block-diagonal mask; a padded patch must not be attended
    assert set_attention(vlm, "sdpa", packed=True, pixel_masks_full=True) == {"vision_config": UNMASKED}
    vlm = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    assert set_attention(vlm, "sdpa", packed=False, pixel_masks_full=False) == {"text_config": UNMASKED}  # an image with padded patches
    assert vlm.config.vision_config._attn_implementation == "sdpa"
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    assert set_attention(lm, "masked", packed=False) == {}  # --attention masked: transformers' own
    assert lm.config._attn_implementation == "sdpa"
    assert set_attention(lm, "sdpa", packed=False) == {"text_config": UNMASKED}
    assert lm.config._attn_implementation == UNMASKED
    # a sliding window is a mask of its own
    assert not full_attention(SimpleNamespace(layer_types=["full_attention", "sliding_attention"]))
    assert not full_attention(SimpleNamespace(sliding_window=4096))
    assert full_attention(SimpleNamespace(sliding_window=4096, use_sliding_window=False))
    assert full_attention(SimpleNamespace())
