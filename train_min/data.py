"""Training examples from a published dataset, encoded once before training.

perception: image + the student's prompt (with its focus)  ->  the extraction   (`extraction` config)
reasoner:   extraction + question (+ options)               ->  the reasoning    (`reasoning` config)

Each example is the chat the model will see, rendered with the model's own chat template:
the prompt part (with the generation prompt) and the whole chat. The prompt's tokens are the
prefix of the whole chat's tokens, so labels are -100 over the prompt (image tokens
included) and the ids themselves over the assistant's reply, its end-of-turn token
included: the model learns to stop. Padding is -100 too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from pipelines.core.letters import lettered
from pipelines.core.splits import TEST, TRAIN
from pipelines.stages import STAGES
from pipelines.stages.prompting import PROMPT_FILES, render
from pipelines.stages.think import think_prompt

IGNORE = -100
CONFIG_OF = {"perception": "extraction", "reasoner": "reasoning"}
# The baselines' prompts: Caption+Think's perception prompt, the direct answer's.
CAPTION_TEMPLATE, DIRECT_TEMPLATE = "caption/v1", "direct/v1"
THINK_TEMPLATE = STAGES["think"].template  # the reasoner's prompt where a dataset carries none


def load_rows(data: str, config: str):
    """A publish folder (or a Hub dataset id) -> the rows of one config, every split's
    (`train` first, then `test`), each with its `split` (what train_min holds out)."""
    import datasets

    sizes = {name: len(split) for name, split in datasets.load_dataset(data, config).items()}
    order = sorted(sizes, key=lambda name: (name != TRAIN, name != TEST, name))
    ds = datasets.load_dataset(data, config, split="+".join(order))  # one table: `concatenate_datasets` loses nesting in flatten()
    ds = ds.remove_columns([c for c in ("split",) if c in ds.column_names])
    ds = ds.add_column("split", [name for name in order for _ in range(sizes[name])])
    return ds.cast_column("image", datasets.Image(decode=False)) if "image" in ds.column_names else ds


TEMPLATE_OF = {"perception": "student", "reasoner": "think"}  # the template a task's prompt column was rendered with


def dataset_template(data: str, kind: str) -> str | None:
    """The text of the `kind` ("student", "think") prompt template a dataset was published
    with (`prompts/<kind>.jinja` beside its data; a local folder or a Hub id), or None where
    it has none (a dataset published before the templates were, or not by this tool)."""
    local = Path(data) / PROMPT_FILES[kind]
    if Path(data).is_dir():
        return local.read_text() if local.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(data, PROMPT_FILES[kind], repo_type="dataset")).read_text()
    except Exception:  # noqa: BLE001 - no such file, no network: the dataset's rows still carry their prompts
        return None


def model_template(model: str, kind: str) -> str | None:
    """The path of the `kind` template a model trained by train_min keeps beside its weights
    (copied from its dataset), or None."""
    path = Path(model) / PROMPT_FILES[kind]
    return str(path) if path.is_file() else None


def options_text(choices) -> str:
    """Answer options as lines after a question: "\nA. red\nB. blue"."""
    return "".join(f"\n{line}" for line in lettered(choices))


def direct_prompt(question: str, choices=(), template: str = DIRECT_TEMPLATE) -> str:
    """The direct-answer baseline's prompt: the question, its options, and how to answer."""
    return render(template, question=question, options=options_text(choices))


def reasoner_prompt(extraction: str, question: str, choices=(), template: str = THINK_TEMPLATE) -> str:
    """What the reasoner reads, in training and in the evaluation: the think stage's prompt
    (the teacher wrote the traces to it), with the extraction and never the image."""
    return think_prompt(template, extraction, question, lettered(choices))


def chats(row: dict, task: str) -> tuple[list[dict], list[dict], list[Image.Image]]:
    """(prompt messages, whole chat, images) for one row."""
    if task == "perception":
        image = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
        user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row["prompt"]}]}
        reply = {"role": "assistant", "content": [{"type": "text", "text": row["extraction"]}]}
        return [user], [user, reply], [image]
    # the dataset's own prompt (the think stage's, rendered) where it has one
    text = row.get("prompt") or reasoner_prompt(row["extraction"], row["question"], row.get("choices") or ())
    return [{"role": "user", "content": text}], [{"role": "user", "content": text}, {"role": "assistant", "content": row["reasoning"]}], []


@dataclass
class Encoder:
    processor: object  # an AutoProcessor (VLM) or a tokenizer (text-only)
    task: str
    max_length: int = 1024

    def _encode(self, text: str, images: list) -> dict:
        if images:
            return self.processor(text=[text], images=[images], return_tensors="pt")
        return self.processor(text, return_tensors="pt", add_special_tokens=False)

    def _prompt_length(self, prompt: str, whole: str, ids: torch.Tensor) -> int | None:
        """The prompt's tokens in the encoded chat `ids`, without processing its images again:
        the texts tokenized alone (an image is one placeholder token there) give the prompt's
        and the reply's tokens, and what the processor added (the image placeholders' expansion,
        special tokens) lies in the prompt. None when the tokens do not line up that way (then
        the caller encodes the prompt on its own)."""
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        plain = tokenizer(whole, add_special_tokens=False)["input_ids"]
        n_prompt = len(head) + len(ids) - len(plain)
        if plain[: len(head)] != head or ids[n_prompt:].tolist() != plain[len(head):]:
            return None
        return n_prompt

    def __call__(self, row: dict) -> dict | None:
        """One encoded example, or None when the prompt alone does not fit in max_length."""
        prompt_msgs, whole_msgs, images = chats(row, self.task)
        template = self.processor.apply_chat_template
        prompt = template(prompt_msgs, add_generation_prompt=True, tokenize=False)
        whole = template(whole_msgs, tokenize=False)
        if not whole.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently inside the whole chat; "
                             "cannot find the assistant's span")
        full = self._encode(whole, images)
        ids = full["input_ids"][0]
        n_prompt = self._prompt_length(prompt, whole, ids) if images else None
        if n_prompt is None:  # the prompt encoded on its own: its images processed once more
            n_prompt = self._encode(prompt, images)["input_ids"].shape[1]
        if n_prompt >= self.max_length:
            return None  # cutting into the prompt would cut image tokens or the instruction
        ids = ids[: self.max_length]  # the reply is cut, never the prompt
        labels = ids.clone()
        labels[:n_prompt] = IGNORE
        out = {"input_ids": ids, "labels": labels, "n_targets": int((labels[1:] != IGNORE).sum())}
        for key in ("pixel_values", "pixel_attention_mask", "image_grid_thw"):
            if key in full:
                out[key] = full[key][0]
        return out


def padded_length(n: int, multiple: int) -> int:
    """n rounded up to a multiple (1: n): few distinct shapes, so a compiled model recompiles little."""
    return -(-n // max(1, multiple)) * max(1, multiple)


def real_tiles(counts: list[int], width: int, pin: bool = False) -> torch.Tensor:
    """The flat indices, into a (rows x width) grid of image tiles padded with zero tiles,
    of each row's `counts[i]` real tiles, in order: which tiles the vision tower sees,
    known on the host (train_min/vision.py)."""
    tiles = torch.tensor([i * width + j for i, n in enumerate(counts) for j in range(n)], dtype=torch.long)
    return tiles.pin_memory() if pin else tiles


def collate(examples: list[dict], pad_id: int, pin: bool = False, multiple: int = 1) -> dict:
    """Right-pad ids (pad_id) and labels (-100); pad image tiles to the batch's most, with
    zeros (Idefics3 skips all-zero images; their attention mask is zero), and name the real
    tiles (`tiles`). `pin`: build the batch in pinned host memory, for asynchronous copies
    to the GPU."""
    length = padded_length(max(len(e["input_ids"]) for e in examples), multiple)
    def full(shape, value, dtype):
        return torch.full(shape, value, dtype=dtype, pin_memory=pin)

    batch = {
        "input_ids": full((len(examples), length), pad_id, torch.long),
        "labels": full((len(examples), length), IGNORE, torch.long),
        "attention_mask": full((len(examples), length), 0, torch.long),
    }
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        batch["input_ids"][i, :n] = e["input_ids"]
        batch["labels"][i, :n] = e["labels"]
        batch["attention_mask"][i, :n] = 1
    for key in ("pixel_values", "pixel_attention_mask"):
        if key in examples[0]:
            tiles = max(e[key].shape[0] for e in examples)
            padded = full((len(examples), tiles, *examples[0][key].shape[1:]), 0, examples[0][key].dtype)
            for i, e in enumerate(examples):
                padded[i, : e[key].shape[0]] = e[key]
            batch[key] = padded
    if "pixel_values" in examples[0]:
        batch["tiles"] = real_tiles([e["pixel_values"].shape[0] for e in examples], batch["pixel_values"].shape[1], pin)
    return batch


def pack(examples: list[dict], pad_id: int, length: int, pin: bool = False, multiple: int = 1, varlen: bool = False) -> dict:
    """The same examples as `collate`, packed into rows of at most `length` tokens (first fit,
    longest first) with no padding between them: position ids restart at each example, and
    no attention mask is given, so the model's causal mask is block-diagonal (transformers
    reads the example boundaries from the position ids) and no token attends across an
    example. Each row's images are its examples' images in order. The loss is the same as
    over the unpacked batch; only the padding (and its compute) is gone. `varlen`: also the
    examples' boundaries for train_min/attention.py (`cu_seq_lens_q`, `max_length_q`)."""
    rows: list[list[dict]] = []
    for e in sorted(examples, key=lambda e: -len(e["input_ids"])):
        n = len(e["input_ids"])
        fit = next((r for r in rows if sum(len(x["input_ids"]) for x in r) + n <= max(length, n)), None)
        (fit.append(e) if fit is not None else rows.append([e]))
    width = padded_length(max(sum(len(x["input_ids"]) for x in r) for r in rows), multiple)
    def full(shape, value, dtype):
        return torch.full(shape, value, dtype=dtype, pin_memory=pin)

    batch = {"input_ids": full((len(rows), width), pad_id, torch.long), "labels": full((len(rows), width), IGNORE, torch.long),
             "position_ids": torch.zeros((len(rows), width), dtype=torch.long, pin_memory=pin)}
    for i, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e["input_ids"])
            batch["input_ids"][i, at : at + n] = e["input_ids"]
            batch["labels"][i, at : at + n] = e["labels"]
            batch["position_ids"][i, at : at + n] = torch.arange(n)
            at += n
        batch["position_ids"][i, at:] = torch.arange(width - at)  # the padding is one more "example", never a target
    if varlen:
        from train_min.attention import segments

        bounds = segments([[len(x["input_ids"]) for x in row] for row in rows], width)
        batch["cu_seq_lens_q"] = bounds.pin_memory() if pin else bounds
        batch["max_length_q"] = width
    for key in ("pixel_values", "pixel_attention_mask"):
        if key in examples[0]:
            per_row = [torch.cat([e[key] for e in row]) for row in rows]
            tiles = max(t.shape[0] for t in per_row)
            padded = full((len(rows), tiles, *per_row[0].shape[1:]), 0, per_row[0].dtype)
            for i, t in enumerate(per_row):
                padded[i, : t.shape[0]] = t
            batch[key] = padded
    if "pixel_values" in examples[0]:
        batch["tiles"] = real_tiles([sum(e["pixel_values"].shape[0] for e in row) for row in rows], batch["pixel_values"].shape[1], pin)
    return batch

