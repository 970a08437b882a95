"""The synthetic scene source: images drawn with Pillow, deterministic by seed, each record
carrying the ground-truth facts its answers were computed from.

Held-out split: every scene's ground truth (family and facts) hashes into [0, 1); scenes
under `heldout_fraction` belong to the held-out split and are never drawn for training
(the training sampler draws again), so a model trained on `split: train` is evaluated on
`split: heldout` scenes it has never seen, whatever the seeds of the two runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re

from pipelines.config.source_config import SourceConfig, SyntheticSource
from pipelines.core.record import ImageData, Record, Turn, record_id
from pipelines.sources.scenes import FAMILIES
from pipelines.sources.scenes.base import add_clutter, add_distractors, sketching

MAX_DRAWS = 1000


def scene_split(family: str, facts: dict, heldout_fraction: float) -> str:
    key = json.dumps([family, facts], sort_keys=True, default=str).encode()
    u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return "heldout" if u < heldout_fraction else "train"


def _compose(index: int, config: SyntheticSource):
    """Scene number `index` as (image, turns, ground truth), from the scene's own random
    stream (the image is a blank while `sketching`)."""
    rng = random.Random(f"synthetic:{config.seed}:{config.split}:{index}")
    family = FAMILIES[rng.choice(config.families)]
    for _ in range(MAX_DRAWS):
        facts = family.sample_facts(rng, config.difficulty)
        if scene_split(family.name, facts, config.heldout_fraction) == config.split:
            break
    else:
        raise RuntimeError(f"no {config.split} scene of family {family.name} in {MAX_DRAWS} draws")
    image = family.draw(facts, config.image_size, rng, config.difficulty)
    image = add_clutter(image, rng, config.difficulty.clutter)
    add_distractors(image, rng, config.difficulty.distractors)
    turns = []
    for template, args, choices in family.turn_specs(facts, rng, rng.randint(1, config.max_turns)):
        question, answer_type = family.question(template, args)
        answer = family.solve(template, args, facts, choices)
        meta = {"family": family.name, "template": template, "args": args}
        turns.append(Turn(question, answer, tuple(choices), answer_type, meta))
    ground_truth = {"family": family.name, "values": facts, "split": config.split, "distractors": config.difficulty.distractors}
    return image, tuple(turns), ground_truth


def _origin(index: int, config: SyntheticSource) -> str:
    return f"{config.split} scene {index} (seed {config.seed})"


def scene_index(origin: str) -> int:
    """The scene number in a synthetic record's `origin` (`_origin`'s form): with the
    source's config, `make_record` draws that record again, byte for byte."""
    match = re.fullmatch(r"(?:train|heldout) scene (\d+) \(seed -?\d+\)", origin)
    if not match:
        raise ValueError(f"not a synthetic scene's origin: {origin[:80]!r}")
    return int(match.group(1))


def make_record(index: int, config: SyntheticSource, name: str = "synthetic", license: str = "cc0-1.0") -> Record:
    """Record number `index` of the source: the same bytes and id on every run and worker."""
    image, turns, facts = _compose(index, config)
    buf = io.BytesIO()
    # compress_level 1: ~3x faster than the default for these flat drawings, ~20% larger.
    image.save(buf, format="PNG", compress_level=1)
    # no perceptual hash: synthetic records are deduplicated by their ground truth, not pixels
    images = (ImageData.from_bytes(buf.getvalue(), image.width, image.height, "PNG"),)
    return Record(id=record_id(name, images, turns), source=name, license=license, images=images, turns=turns,
                  facts=facts, origin=_origin(index, config))


def sketch_record(index: int, config: SyntheticSource, name: str = "synthetic", license: str = "cc0-1.0") -> Record:
    """Record number `index` without its image: the same facts, turns and origin as
    `make_record`'s, no image and no id (the id hashes the image's bytes). Drawn as a
    sketch (see `sketching`), several times cheaper: what deduplication reads."""
    with sketching():
        _, turns, facts = _compose(index, config)
    return Record(id="", source=name, license=license, images=(), turns=turns, facts=facts, origin=_origin(index, config))


def num_scenes(config: SourceConfig) -> int:
    """How many scenes a synthetic source draws (its `limit` caps `num_records`)."""
    n = config.synthetic.num_records
    return n if config.limit is None else min(config.limit, n)
