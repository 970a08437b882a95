"""The output layer's loss on the GPU's path: on CUDA `loss_sum` hands TargetCrossEntropy
bf16 hidden states (the final norm returns fp32 under autocast; autocast's own Linear would
cast them), with fp32 weights. bf16 matmuls run on the CPU too, so the path is checked here
against a plain fp32 cross-entropy."""

import torch
import torch.nn.functional as F

from train_min.loss import TargetCrossEntropy


def test_bf16_hidden_states_give_the_fp32_loss_and_fp32_gradients():
    torch.manual_seed(0)
    h, w = torch.randn(40, 32), torch.randn(300, 32) * 0.2
    targets = torch.randint(0, 300, (40,))
    h_ref, w_ref = h.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.cross_entropy(h_ref @ w_ref.t(), targets, reduction="sum")
    ref.backward()

    h_ours, w_ours = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = TargetCrossEntropy.apply(h_ours.to(torch.bfloat16), w_ours, targets, 16)  # 3 chunks
    loss.backward()
    assert loss.dtype == torch.float32 and abs(loss.item() - ref.item()) / ref.item() < 1e-2
    # the gradients reach the fp32 hidden states and weights in fp32, pointing where fp32's do
    assert h_ours.grad.dtype == w_ours.grad.dtype == torch.float32
    for ours, theirs in ((h_ours.grad, h_ref.grad), (w_ours.grad, w_ref.grad)):
        assert F.cosine_similarity(ours.flatten(), theirs.flatten(), dim=0) > 0.999
        assert (ours.norm() / theirs.norm() - 1).abs() < 1e-2
