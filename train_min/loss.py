"""train_min's loss: next-token cross-entropy over the target tokens only, with a fused
linear cross-entropy that never holds the logits of a whole batch; and the module that
carries it through DistributedDataParallel."""

from __future__ import annotations

import torch

from train_min import vision


def parts(model):
    """(the model body that returns hidden states, the output head); peft wrappers looked through."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.base_model, inner.get_output_embeddings()


def loss_sum(model, batch: dict, device: str, chunk: int = 512) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the target tokens of a batch, and their count.

    Logits are computed only where there is a target (the assistant's reply), `chunk` rows at
    a time, and the gradients are taken there and then (`TargetCrossEntropy`): the (B, T,
    vocab) fp32 tensor a plain `model(...).logits` loss holds never exists, and no logits are
    recomputed in the backward pass."""
    labels = batch["labels"]
    flat = labels[:, 1:].reshape(-1)  # position t predicts token t+1
    where = torch.nonzero(flat != -100).squeeze(1)  # found on the host: no device sync mid-step
    targets = flat[where]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    body, head = parts(model)
    if getattr(head, "bias", None) is not None:
        raise ValueError("train_min's loss supports output heads without a bias (as every Llama/Qwen/SmolVLM head)")
    if device == "cuda":  # a copy from pageable memory waits for the GPU's queue; from pinned memory it is asynchronous
        where, targets = (x.pin_memory().to(device, non_blocking=True) for x in (where, targets))
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        if "tiles" in inputs and vision.fits(body):  # the images merged without a device sync
            inputs = vision.merged_inputs(body, inputs, device)
        else:  # the batch is in pinned memory on CUDA; `tiles` is train_min's, not the model's
            inputs = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in inputs.items() if k != "tiles"}
        hidden = body(**inputs, use_cache=False).last_hidden_state  # (B, T, H); no KV cache in training
        h = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, where)  # (N, H)
        if device == "cuda":  # the final norm hands back fp32; the output layer's matmuls run in bf16, as autocast's Linear would
            h = h.to(torch.get_autocast_dtype("cuda"))
    return TargetCrossEntropy.apply(h, head.weight, targets, chunk), int(targets.numel())


class TargetCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, t_i), chunk by chunk, with the gradients for h and W computed in
    the forward pass while each chunk's softmax is at hand (a fused linear cross-entropy):
    one chunk of logits exists at a time, none is kept or recomputed. Matmuls run in h's
    dtype (bf16 on CUDA, where loss_sum casts it; fp32 matmuls on the 151936-word vocabulary
    took a fifth of a 1.7B model's step), the softmax and the W gradient accumulate in fp32."""

    @staticmethod
    def forward(ctx, h, weight, targets, chunk):
        w = weight.to(h.dtype)
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], chunk):
            hc, tc = h[start : start + chunk], targets[start : start + chunk]
            logits = (hc @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, tc[:, None]).squeeze(1)).sum()
            if grad_h is None and grad_w is None:
                continue
            g = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            g[torch.arange(len(tc), device=g.device), tc] -= 1.0  # d CE / d logits
            g = g.to(h.dtype)
            if grad_h is not None:
                torch.mm(g, w, out=grad_h[start : start + chunk])
            if grad_w is not None:
                grad_w.add_(g.t() @ hc)
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        return (None if grad_h is None else grad_h * grad_out.to(grad_h.dtype),
                None if grad_w is None else (grad_w * grad_out).to(ctx.weight_dtype), None, None)


class TargetLoss(torch.nn.Module):
    """`loss_sum` as a module's forward, so that DistributedDataParallel, which wraps it,
    prepares its gradient reduction on every step (the loss calls the model's body and head
    directly, never the model's own forward)."""

    def __init__(self, model, device: str, chunk: int):
        super().__init__()
        self.model, self.device, self.chunk = model, device, chunk

    def forward(self, batch: dict):
        return loss_sum(self.model, batch, self.device, self.chunk)
