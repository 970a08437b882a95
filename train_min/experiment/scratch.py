"""Models from scratch, offline: a byte-level BPE tokenizer trained on a dataset's own text,
an Idefics3 (SmolVLM architecture) VLM and a Llama causal LM built from a config with
random weights, saved with `save_pretrained` so that train_min, the evaluation and vLLM
load them through the same Auto* path as any checkpoint from the Hub.

    texts = dataset_texts("out/quickstart")
    tok = train_tokenizer(texts, IDEFICS3_SPECIALS, vocab_size=1024)
    build_idefics3("out/tiny/vlm", tok, image_size=128, patch_size=8, scale_factor=4, text={...}, vision={...})
    build_llama("out/tiny/lm", train_tokenizer(texts, LM_SPECIALS, 1024), text={...})
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

BOS, EOS, PAD = "<|im_start|>", "<end_of_utterance>", "<pad>"
IMAGE_TOKENS = ["<image>", "<fake_token_around_image>", "<global-img>"]
IDEFICS3_SPECIALS = [BOS, EOS, *IMAGE_TOKENS, PAD]
LM_SPECIALS = [BOS, EOS, PAD]
# Role-prefixed turns ("User:", "Assistant:") ended by <end_of_utterance>, as SmolVLM's.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def dataset_texts(data: str) -> Iterator[str]:
    """Every text a model will read or write in a published dataset: the student prompts,
    extractions, questions, options and reasoning traces."""
    from train_min.data import load_rows

    for row in load_rows(data, "extraction"):
        yield row["prompt"]
        yield row["extraction"]
    for row in load_rows(data, "reasoning"):
        yield row["question"]
        yield from row.get("choices") or ()
        yield row["reasoning"]


def train_tokenizer(texts: Iterable[str], specials: list[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer (every byte is in the alphabet: nothing is ever unknown)
    with the chat template above."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    if set(IMAGE_TOKENS) <= set(specials):
        fast.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _llama_config(tokenizer, text: dict) -> dict:
    heads = text.get("num_attention_heads", 2)
    return {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": heads,
            "max_position_embeddings": 1024,
            **text, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id}


def build_idefics3(path: Path | str, tokenizer, image_size: int = 64, patch_size: int = 16, scale_factor: int = 2,
                   text: dict | None = None, vision: dict | None = None, seed: int = 0) -> Path:
    """An Idefics3 VLM with random weights and its processor. One image becomes
    (image_size / patch_size)^2 / scale_factor^2 tokens (no tiling)."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor

    try:  # transformers >= 5.18 names the Pillow processor apart; older ones have the one class
        from transformers import Idefics3ImageProcessorPil
    except ImportError:
        from transformers import Idefics3ImageProcessor as Idefics3ImageProcessorPil

    patches = (image_size // patch_size) ** 2
    if (image_size // patch_size) % scale_factor:
        raise ValueError(f"image_size/patch_size = {image_size // patch_size} patches a side is not divisible by scale_factor {scale_factor}")
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                                max_image_size={"longest_edge": image_size}, do_resize=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=patches // scale_factor**2, chat_template=CHAT_TEMPLATE)
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 1,
                       **(vision or {}), "image_size": image_size, "patch_size": patch_size},
        text_config=_llama_config(tokenizer, {"head_dim": 32, **(text or {})}),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        scale_factor=scale_factor,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def build_llama(path: Path | str, tokenizer, text: dict | None = None, seed: int = 0) -> Path:
    """A Llama causal LM with random weights, and its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = _llama_config(tokenizer, {"head_dim": 32, **(text or {})})
    fields.pop("model_type")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**fields))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
