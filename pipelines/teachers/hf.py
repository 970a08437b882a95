"""Loading a Hugging Face model, in one place for the transformers teacher and train_min's
evaluation generators: a Hub id or a local path becomes an image-text-to-text model with its
processor when the checkpoint has an image processor, else a causal LM with its tokenizer.
Tokenizers pad on the left (batched generation) and always have a pad token."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_processor(path: str, revision: str = "main", trust_remote_code: bool = False, gguf_file: str | None = None):
    """(processor, tokenizer, vision): for a text-only model the processor is its tokenizer."""
    from transformers import AutoProcessor, AutoTokenizer

    load = {"revision": revision, "trust_remote_code": trust_remote_code, **({"gguf_file": gguf_file} if gguf_file else {})}
    try:
        processor = AutoProcessor.from_pretrained(path, **load)
    except (OSError, ValueError, KeyError, TypeError):
        processor = None
    tokenizer = getattr(processor, "tokenizer", None)
    vision = tokenizer is not None and hasattr(processor, "image_processor")
    if not vision:
        processor = tokenizer = AutoTokenizer.from_pretrained(path, **load)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor, tokenizer, vision


def load_model(path: str, vision: bool, revision: str = "main", dtype: str = "auto", device: str = "cpu",
               trust_remote_code: bool = False, gguf_file: str | None = None):
    """The model in eval mode on `device`; `dtype` "auto" keeps the checkpoint's."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    net = auto.from_pretrained(path, revision=revision, dtype=DTYPES.get(dtype, "auto"), trust_remote_code=trust_remote_code, **extra)
    return net.to(device).eval()
