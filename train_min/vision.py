"""The image half of an Idefics3-family step (Idefics3, SmolVLM) without a device sync.

transformers' Idefics3Model finds the zero padding tiles of a batch by boolean indexing,
merges the image features into the token embeddings with `masked_scatter` (whose backward is
a `masked_select`), and the vision tower's embeddings set the patches' position ids by
boolean indexing too: each of these waits for the GPU to learn a size (a device-to-host
sync), and the last one splits the compiled vision tower into three graphs. train_min knows
those sizes on the host - which tiles are real (`collate` records them as `tiles`) and where
the image tokens are (in the input ids, before they are copied) - so here:

- the real tiles are taken by `index_select` at their host-known indices;
- the features go into the embeddings by `index_copy` at the image tokens' positions (its
  backward is an `index_select`);
- the vision embeddings' position ids are set with `torch.where` (`embeddings_forward`,
  installed by `install`): the same values as transformers', the tower one graph.

The body then runs on `inputs_embeds`, as transformers' own forward does after its merge;
the loss and the gradients are the same as through `body(input_ids=..., pixel_values=...)`
(tests/train/test_images.py)."""

from __future__ import annotations

import types

import torch


def fits(body) -> bool:
    """Whether `body` is an Idefics3-family model body: a vision tower with NaViT embeddings,
    a connector and a language model, and image tokens one per feature row."""
    emb = getattr(getattr(body, "vision_model", None), "embeddings", None)
    return (all(hasattr(body, n) for n in ("connector", "text_model", "image_seq_len")) and hasattr(body.config, "image_token_id")
            and all(hasattr(emb, n) for n in ("patch_embedding", "position_embedding", "num_patches_per_side", "patch_size")))


def install(body) -> bool:
    """The vision embeddings' forward replaced by `embeddings_forward` where the model body
    (`train_min.loss.parts(model)[0]`) is of this family; before compiling, so the compiled
    tower is one graph. Returns whether it was."""
    if not fits(body):
        return False
    emb = body.vision_model.embeddings
    emb.forward = types.MethodType(embeddings_forward, emb)
    return True


def embeddings_forward(self, pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor) -> torch.Tensor:
    """Idefics3's vision embeddings (NaViT-style fractional positions: a smaller image's
    patches spread over the whole grid of learned positions), as transformers computes them,
    with the padded patches' position ids zeroed by `torch.where`, not boolean indexing.
    pixel_values (N, C, H, W), patch_attention_mask (N, H/patch, W/patch) -> (N, patches, D)."""
    n = pixel_values.shape[0]
    embeddings = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # (N, patches, D)
    side = self.num_patches_per_side
    boundaries = torch.arange(1 / side, 1.0, 1 / side, device=pixel_values.device)

    def buckets(count: torch.Tensor, size: int) -> torch.Tensor:  # (N,) patches in use -> (N, size) position buckets
        coords = torch.arange(size, device=pixel_values.device, dtype=torch.float32)[None, :] * (1.0 / count)[:, None]
        return torch.bucketize(torch.clamp(coords, max=1.0 - 1e-6).to(pixel_values.dtype), boundaries, right=True)

    rows, cols = patch_attention_mask.shape[1:]
    ids = buckets(patch_attention_mask[:, :, 0].sum(dim=1), rows)[:, :, None] * side + buckets(patch_attention_mask[:, 0, :].sum(dim=1), cols)[:, None, :]
    ids = torch.where(patch_attention_mask.reshape(n, -1), ids.reshape(n, -1), 0)  # padded patches: position 0, as transformers'
    return embeddings + self.position_embedding(ids)


def merged_inputs(body, batch: dict, device: str) -> dict:
    """The body's inputs for a batch with images (host tensors; `tiles` from `collate` or
    `pack`, labels taken out): `inputs_embeds` (B, T, H), each image token's row replaced by
    its image's feature row, in order, and the batch's other inputs; on `device`, with no
    device sync (the batch is in pinned memory on CUDA, and so is what is made here)."""
    ids, tiles = batch["input_ids"], batch["tiles"]
    slots = torch.nonzero(ids.reshape(-1) == body.config.image_token_id).squeeze(1)  # on the host: the image tokens' rows
    if slots.numel() != tiles.numel() * body.image_seq_len:
        raise ValueError(f"{slots.numel()} image tokens in the batch for {tiles.numel()} image tiles of {body.image_seq_len} tokens each")

    def to(x: torch.Tensor) -> torch.Tensor:
        return x.to(device, non_blocking=True)

    tiles = to(tiles)
    pixels = to(batch["pixel_values"]).flatten(0, 1).index_select(0, tiles).to(body.dtype)  # (tiles, C, H, W): the real ones
    if "pixel_attention_mask" in batch:
        mask = to(batch["pixel_attention_mask"]).flatten(0, 1).index_select(0, tiles)  # (tiles, H, W)
    else:
        mask = torch.ones((pixels.shape[0], *pixels.shape[2:]), dtype=torch.bool, device=pixels.device)
    p = body.config.vision_config.patch_size
    patch_mask = mask.unfold(1, p, p).unfold(2, p, p).sum(dim=(-1, -2)) > 0  # (tiles, H/p, W/p): patches with any pixel
    features = body.connector(body.vision_model(pixel_values=pixels, patch_attention_mask=patch_mask).last_hidden_state)
    embeds = body.get_input_embeddings()(to(ids))  # (B, T, H)
    width = embeds.shape[-1]
    slots = to(slots.pin_memory() if device == "cuda" else slots)
    merged = embeds.reshape(-1, width).index_copy(0, slots, features.reshape(-1, width).to(embeds.dtype)).view_as(embeds)
    rest = {k: to(v) if torch.is_tensor(v) else v for k, v in batch.items()
            if k not in ("input_ids", "pixel_values", "pixel_attention_mask", "tiles")}
    return {"inputs_embeds": merged, **rest}
