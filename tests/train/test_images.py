"""Idefics3's image half without a device sync (train_min/vision.py): the same loss and
gradients as transformers' own forward, on batches with padding tiles, padded patches and
packed rows; no operation in a training step that must wait for the device to learn a size;
a vision embedding that compiles as one graph."""

import io
from collections import Counter

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from train_min import vision
from train_min.data import Encoder, collate, pack
from train_min.loss import loss_sum


def _png(seed: int) -> dict:
    b = io.BytesIO()
    Image.fromarray((np.random.RandomState(seed).rand(64, 48, 3) * 255).astype("uint8")).save(b, "PNG")
    return {"bytes": b.getvalue()}


def _setup(tiny_idefics3, padded_patches: bool = True):
    """The tiny model and three examples: one image; one image with its right quarter marked
    padding (padded patches, unless not `padded_patches`); the two joined into one example
    of two images (so a batch of them has a zero padding tile)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    encode = Encoder(processor, "perception", 320)
    a, b = (encode({"image": _png(i), "prompt": "what is here " * n, "extraction": "a red cup " * n}) for i, n in enumerate([1, 3]))
    if padded_patches:
        b["pixel_attention_mask"][:, :, 48:] = 0
    joined = {k: torch.cat([a[k], b[k]]) for k in ("input_ids", "labels", "pixel_values", "pixel_attention_mask")}
    joined["n_targets"] = a["n_targets"] + b["n_targets"]
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    return model, processor.tokenizer.pad_token_id, [a, b, joined]


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss, n = loss_sum(model, batch, "cpu", chunk=16)
    loss.backward()
    return loss.detach(), n, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_merged_images_give_transformers_loss_and_gradients(tiny_idefics3):
    model, pad, examples = _setup(tiny_idefics3)
    assert vision.install(model.model)
    batch = collate(examples, pad)
    assert batch["pixel_values"].shape[1] == 2 and batch["tiles"].tolist() == [0, 2, 4, 5]  # (0, 1) and (1, 1) are padding
    stock = _loss_and_grads(model, {k: v for k, v in batch.items() if k != "tiles"})  # through transformers' own forward
    ours = _loss_and_grads(model, batch)
    assert ours[1] == stock[1] and torch.allclose(ours[0], stock[0], rtol=1e-5)
    assert ours[2].keys() == stock[2].keys() and any("vision_model" in k for k in ours[2])
    for name, g in stock[2].items():
        assert torch.allclose(ours[2][name], g, rtol=1e-4, atol=1e-6), name
    packed = pack(examples, pad, sum(len(e["input_ids"]) for e in examples))  # one row, its three images in order
    assert packed["input_ids"].shape[0] == 1 and packed["tiles"].tolist() == [0, 1, 2, 3]
    assert torch.allclose(_loss_and_grads(model, packed)[0], stock[0], rtol=1e-5)
    short = {**batch, "tiles": batch["tiles"][:-1]}  # a tile that does not match the image tokens: a clear error
    try:
        loss_sum(model, short, "cpu")
        raise AssertionError("a batch whose tiles miss an image was accepted")
    except ValueError as e:
        assert "image tokens" in str(e)


def test_vision_embeddings_match_transformers_and_compile_to_one_graph(tiny_idefics3):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    emb = model.model.vision_model.embeddings
    pixels = torch.randn(3, 3, 64, 64)
    masks = torch.ones(3, 4, 4, dtype=torch.bool)
    masks[1, 3:, :] = False  # a wide image: its last row of patches is padding
    masks[2, :, 2:] = False  # a tall one
    stock = emb(pixels, masks)  # with gradients, as in training
    assert vision.install(model.model)
    assert torch.equal(emb(pixels, masks), stock)
    torch._dynamo.reset()
    traced = torch._dynamo.explain(emb)(pixels, masks)  # transformers' own: 2 graphs, split at a nonzero
    assert (traced.graph_count, traced.graph_break_count) == (1, 0), traced.break_reasons


class _Waits(TorchDispatchMode):
    """Counts the operations whose output size depends on the data (on a GPU, each waits for
    the device): nonzero, boolean indexing, masked_select/scatter, a scalar read back."""

    NAMES = ("nonzero", "masked_select", "masked_scatter", "_local_scalar_dense", "is_nonzero", "unique")

    def __init__(self):
        super().__init__()
        self.seen = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "index" in name and any(isinstance(a, (list, tuple)) and any(torch.is_tensor(t) and t.dtype == torch.bool for t in a)
                                   for a in args):
            name += " (boolean)"
        if any(n in name for n in self.NAMES) or name.endswith("(boolean)"):
            self.seen[name] += 1
        return func(*args, **(kwargs or {}))


def test_a_training_step_never_waits_on_the_device(tiny_idefics3):
    from train_min.attention import set_attention

    model, pad, examples = _setup(tiny_idefics3, padded_patches=False)
    # train_min's default path: towers without dense masks, whose eager checks of the masks
    # would read the device (compiled, transformers skips them)
    set_attention(model, "sdpa", packed=False, pixel_masks_full=all(bool(e["pixel_attention_mask"].all()) for e in examples))
    vision.install(model.model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)  # as on CUDA
    batch = collate(examples, pad)
    with _Waits() as waits:
        loss, n = loss_sum(model, batch, "cpu")
        (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    # the only two: the target positions and the image tokens' positions, found in the host's
    # copy of the batch before it is copied to the device
    assert waits.seen == {"aten.nonzero.default": 2}
