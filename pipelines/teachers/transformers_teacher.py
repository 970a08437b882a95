"""The `transformers` teacher: local `generate` with any image-text-to-text model, or any
causal LM for the text-only stages, from a local path or a Hub id.

Requests with the same sampling settings are generated as one left-padded batch; if a
batch fails, its requests are retried one by one so that only the bad one fails.
"""

from __future__ import annotations

import io
from itertools import groupby
from typing import Sequence

import torch
from PIL import Image

from pipelines.config.recipe import TeacherConfig
from pipelines.core.record import TeacherOutput
from pipelines.teachers.base import ChatRequest, TeacherReply, decode_data_uri, split_thinking
from pipelines.teachers.hf import load_model, load_processor


def _to_hf_messages(messages: list[dict]) -> tuple[list[dict], bool]:
    """OpenAI-style messages as the HF chat-template format; image parts become PIL images."""
    out, has_image = [], False
    for m in messages:
        if isinstance(m["content"], str):
            out.append({"role": m["role"], "content": [{"type": "text", "text": m["content"]}]})
            continue
        parts = []
        for part in m["content"]:
            if part["type"] == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image_url":
                image = Image.open(io.BytesIO(decode_data_uri(part["image_url"]["url"])))
                parts.append({"type": "image", "image": image.convert("RGB")})
                has_image = True
            else:
                raise ValueError(f"unsupported message part type {part['type']!r}")
        out.append({"role": m["role"], "content": parts})
    return out, has_image


class TransformersTeacher:
    backend = "transformers"

    def __init__(self, config: TeacherConfig):
        opts = config.transformers
        self.model, self.revision = config.model, config.revision
        self.chat_template_kwargs = dict(opts.chat_template_kwargs)
        load = {"revision": config.revision, "trust_remote_code": opts.trust_remote_code, "gguf_file": opts.gguf_file}
        # an image-text-to-text model, or a text-only LM (the reasoner stages)
        self.processor, self.tokenizer, self.vision = load_processor(config.model, **load)
        self.net = load_model(config.model, self.vision, dtype=opts.dtype, device=opts.device, **load)
        self.device = opts.device

    def close(self) -> None:
        self.net = None

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        replies: list[TeacherReply | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: repr(requests[i].sampling))
        for _, group in groupby(order, key=lambda i: repr(requests[i].sampling)):
            idx = list(group)
            s = requests[idx[0]].sampling
            # Seeded sampling goes request by request: a request's samples then depend only on
            # its prompt and seed, not on its batch neighbours (as vLLM's per-request seeds), so
            # a resumed or re-batched run draws the same samples. Greedy decoding batches.
            chunks = [[i] for i in idx] if s.temperature > 0 and s.seed is not None else [idx]
            try:
                for i, reply in zip(idx, (r for chunk in chunks for r in self._generate([requests[i] for i in chunk]))):
                    replies[i] = reply
            except Exception:  # one bad request must not fail its neighbours: retry alone
                for i in idx:
                    try:
                        replies[i] = self._generate([requests[i]])[0]
                    except Exception as e:
                        replies[i] = TeacherReply(error=f"{type(e).__name__}: {e}")
        return replies  # type: ignore[return-value]

    def _inputs(self, requests: Sequence[ChatRequest]):
        converted = [_to_hf_messages(r.messages) for r in requests]
        if any(has_image for _, has_image in converted) and not self.vision:
            raise ValueError(f"{self.model} is a text-only model but the prompt has an image")
        conversations = [c for c, _ in converted]
        if not self.vision:  # text tokenizers' templates expect string content
            conversations = [[{"role": m["role"], "content": "".join(p["text"] for p in m["content"])} for m in c] for c in conversations]
        common = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", **self.chat_template_kwargs)
        if self.vision:  # processors take tokenizer settings through `processor_kwargs`
            inputs = self.processor.apply_chat_template(conversations, processor_kwargs={"padding": True}, **common)
        else:
            inputs = self.processor.apply_chat_template(conversations, padding=True, **common)
        return inputs.to(self.device)

    @torch.inference_mode()
    def _generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        s = requests[0].sampling
        inputs = self._inputs(requests)
        if s.seed is not None:
            torch.manual_seed(s.seed)
        sample = s.temperature > 0
        out = self.net.generate(
            **inputs,
            max_new_tokens=s.max_tokens,
            do_sample=sample,
            temperature=s.temperature if sample else None,
            top_p=s.top_p if sample else None,
            num_return_sequences=s.n,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        eos = self.net.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        replies = []
        for i in range(len(requests)):
            outputs = []
            for j in range(s.n):
                new = out[i * s.n + j, prompt_len:].tolist()
                stop = next((k for k, t in enumerate(new) if t in eos_ids), None)
                tokens = new if stop is None else new[:stop]
                finish = "length" if stop is None and len(new) >= s.max_tokens else "stop"
                thinking, text = split_thinking(self.tokenizer.decode(tokens, skip_special_tokens=True))
                outputs.append(TeacherOutput(text, finish, int(prompt_tokens[i]), len(tokens), thinking))
            replies.append(TeacherReply(tuple(outputs)))
        return replies
