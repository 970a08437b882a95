"""The recipe's `sources` and `ingest` sections: where records come from and how they are
cleaned (image normalisation, record checks, deduplication) before any teacher sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pipelines.config import Bounds, ConfigError, NonNegativeInt, PositiveInt

SCENE_FAMILIES = ("beakers", "shapes", "barchart", "sign", "clock", "receipt")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO")


@dataclass
class Difficulty:
    """Knobs of the synthetic scenes. The defaults draw the scenes of the quickstart."""

    objects: float = 1.0  # scales how many things there are to count or read (particles, shapes, bars, items)
    clutter: float = 0.0  # 0..1: background texture, speckle and stray lines
    distractors: int = 0  # extra objects no question asks about (named in the ground truth)
    font_scale: float = 1.0  # size of all text in the scene, relative to the default

    def __post_init__(self):
        if not 0.25 <= self.objects <= 4 or not 0 <= self.clutter <= 1 or not 0 <= self.distractors <= 20:
            raise ConfigError("difficulty: objects in [0.25, 4], clutter in [0, 1] and distractors in [0, 20] are required")
        if not 0.3 <= self.font_scale <= 3:
            raise ConfigError(f"difficulty.font_scale: must lie in [0.3, 3], got {self.font_scale}")


@dataclass
class SyntheticSource:
    num_records: NonNegativeInt = 100
    families: list[str] = field(default_factory=lambda: list(SCENE_FAMILIES))
    image_size: Annotated[int, Bounds(64)] = 512
    max_turns: PositiveInt = 3
    seed: int = 0
    # "train" or "heldout": the scene space is split by a hash of each scene's ground truth,
    # so no held-out scene (same facts) is ever drawn for training, whatever the seeds.
    split: Literal["train", "heldout"] = "train"
    heldout_fraction: float = 0.1
    difficulty: Difficulty = field(default_factory=Difficulty)

    def __post_init__(self):
        unknown = set(self.families) - set(SCENE_FAMILIES)
        if unknown or not self.families:
            raise ConfigError(f"families: {sorted(unknown) or '[]'} not among {list(SCENE_FAMILIES)}")
        if not 0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"heldout_fraction: must lie in (0, 0.5), got {self.heldout_fraction}")


@dataclass
class Columns:
    """Which column holds what: question + answer (+ choices), or conversations (LLaVA's
    `[{from, value}]`, `[{role, content}]` or The Cauldron's `[{user, assistant}]`). The image
    column may hold an `Image` feature, bytes, a path (relative to `image_root`) or a list of
    those. docs/sources.md shows the mapping of each common Hub schema."""

    image: str = "image"
    image_template: str | None = None  # Jinja over the row giving the image path under image_root (GQA: "images/{{ imageId }}.jpg")
    question: str | None = "question"  # text, or a list of questions (OCR-VQA: one turn per question/answer pair)
    question_template: str | None = None  # Jinja over the row, for questions assembled from several columns
    context: list[str] = field(default_factory=list)  # columns prepended to the question as "Context: ..." (ScienceQA's hint)
    answer: str | None = "answer"  # text, an option letter, an index into the choices, or a list of annotator answers
    answer_is: Literal["auto", "text", "letter", "index"] = "auto"  # auto: an int with choices is an index, else a letter or an option's text
    answer_index_base: Annotated[int, Bounds(0, 1)] = 0  # an index answer counts from this
    answers: str | None = None  # every annotator's answer (strings or {answer, answer_confidence}); gold is the most common unless `answer` is set
    answers_are: Literal["annotators", "alternatives"] = "annotators"  # alternatives: every listed answer is right (DocVQA)
    choices: str | None = "choices"  # used when present; a column named here otherwise must exist
    inline_choices: bool = True  # options written into the question ("Options: A: x, B: y", "A. x\nB. y") become choices
    answerable: str | None = None  # a flag column (VizWiz's answerable: 0/1); see the source's `unanswerable`
    meta: list[str] = field(default_factory=list)  # columns carried to each turn, the published rows and the evaluation's table
    conversations: str | None = None
    id: str | None = None  # a column to name the row by in rejected rows (default: its index)


@dataclass
class HFSource:
    path: str = ""  # a Hub id, a local dataset folder, a saved dataset (save_to_disk) or a data file
    name: str | None = None  # the Hub dataset's config
    split: str = "train"
    revision: str | None = None
    data_files: list[str] = field(default_factory=list)  # for a format builder, e.g. path: parquet
    streaming: bool = False  # iterate without downloading the whole set first
    columns: Columns = field(default_factory=Columns)
    image_root: str = ""  # where relative image paths point (default: beside the data)
    shards: NonNegativeInt = 0  # read in this many parallel pieces (0: one per 1000 rows, or one per file when streaming)


@dataclass
class LLaVASource:
    json: str = ""  # a LLaVA conversation file: a JSON list, or JSON lines
    image_root: str = ""  # the folder its `image` paths are relative to (default: beside the file)


@dataclass
class ImageFolderSource:
    dir: str = ""  # a folder with images and a metadata.jsonl naming them in `file_name`
    split: str = ""  # a sub-folder (e.g. "train"); "" for the folder itself
    columns: Columns = field(default_factory=lambda: Columns(image="file_name"))


@dataclass
class SourceConfig:
    SWITCH: ClassVar = ("kind", ("synthetic", "hf", "llava", "imagefolder"))
    kind: Literal["synthetic", "hf", "llava", "imagefolder"] = "synthetic"
    name: str = ""  # the records' `source`; default: the kind (synthetic) or the file/dataset name
    license: str = ""  # carried to every record and the card; default "cc0-1.0" for synthetic, else "unknown"
    limit: NonNegativeInt | None = None  # read at most this many records (before checks)
    answer_type: Literal["auto", "choice", "yesno", "number", "text"] = "auto"  # auto: from the answer and choices
    unanswerable: Literal["reject", "gold"] = "reject"  # a question flagged (or answered) unanswerable: a rejected row, or gold "unanswerable"
    # Image references are read only inside the source's folder (image_root); URLs and fsspec
    # chains only with allow_remote, and then only for these schemes.
    allow_remote: bool = False
    remote_schemes: list[str] = field(default_factory=lambda: ["http", "https"])
    synthetic: SyntheticSource = field(default_factory=SyntheticSource)
    hf: HFSource = field(default_factory=HFSource)
    llava: LLaVASource = field(default_factory=LLaVASource)
    imagefolder: ImageFolderSource = field(default_factory=ImageFolderSource)

    def __post_init__(self):
        needed = {"hf": ("hf.path", self.hf.path), "llava": ("llava.json", self.llava.json), "imagefolder": ("imagefolder.dir", self.imagefolder.dir)}
        if self.kind in needed and not needed[self.kind][1]:
            raise ConfigError(f"{needed[self.kind][0]}: required for a source of kind {self.kind!r}")
        if not self.name:
            self.name = self.kind if self.kind == "synthetic" else _default_name(self)
        if not self.license:
            self.license = "cc0-1.0" if self.kind == "synthetic" else "unknown"


def _default_name(config: SourceConfig) -> str:
    path = {"hf": config.hf.path, "llava": config.llava.json, "imagefolder": config.imagefolder.dir}[config.kind]
    stem = path.rstrip("/").rsplit("/", 1)[-1]
    return stem.rsplit(".", 1)[0] if config.kind == "llava" else stem


@dataclass
class ImagesConfig:
    max_pixels: NonNegativeInt = 1_048_576  # larger images are scaled down to this many pixels, aspect ratio kept (0: never)
    min_side: PositiveInt = 8  # smaller images are rejected
    max_source_pixels: PositiveInt = 64_000_000  # decompression-bomb guard: checked from the header, before decoding
    max_file_bytes: PositiveInt = 50_000_000  # a longer image file is rejected unread (image_file_too_large)
    formats: list[str] = field(default_factory=lambda: list(IMAGE_FORMATS))
    encode: Literal["auto", "png", "jpeg"] = "auto"  # re-encoding when changed; auto: JPEG stays JPEG, the rest PNG
    jpeg_quality: Annotated[int, Bounds(1, 100)] = 95

    def __post_init__(self):
        self.formats = [f.upper() for f in self.formats]


@dataclass
class ChecksConfig:
    max_question_chars: PositiveInt = 2000
    max_answer_chars: PositiveInt = 1000
    max_turns: PositiveInt = 32
    max_choices: Annotated[int, Bounds(2, 8)] = 8  # options are lettered A..H


@dataclass
class DedupConfig:
    exact: bool = True  # same image bytes and the same normalised questions
    near: bool = True  # perceptual image hash within `max_hamming` bits and fuzzy-equal questions
    max_hamming: int = 4
    # near matches confirmed on pixels: mean absolute difference of 8x8 RGB thumbnails, 0..255
    # (resized and JPEG-saved copies differ by under 3)
    max_pixel_diff: Annotated[float, Bounds(0, 255)] = 8.0
    question_similarity: float = 95.0  # rapidfuzz token_sort_ratio, 0..100
    same_answers: bool = True  # near-duplicates must also have the same normalised answers
    max_bucket: PositiveInt = 2000  # larger hash buckets compare only neighbours in question order

    def __post_init__(self):
        if not 0 <= self.max_hamming <= 16 or not 0 <= self.question_similarity <= 100:
            raise ConfigError("max_hamming in [0, 16] and question_similarity in [0, 100] are required")


@dataclass
class IngestConfig:
    images: ImagesConfig = field(default_factory=ImagesConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
