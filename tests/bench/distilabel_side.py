"""The distilabel side of bench_overhead.py, run by an interpreter that has distilabel
installed: the same LLaVA records, the same four stages (statements, focus, extraction with
the image, one think request per question with 3 samples), an instant LLM that answers every
prompt with the same text, and the result saved to disk.

    python tests/bench/distilabel_side.py LLAVA_JSON IMAGE_DIR OUT_DIR
"""

import base64
import json
import sys
import time
from pathlib import Path

from distilabel.models.llms.base import LLM
from distilabel.pipeline import Pipeline
from distilabel.steps import ExpandColumns, LoadDataFromDicts, StepInput, step
from distilabel.steps.tasks import ChatGeneration

TEXT = "The description settles it.\nAnswer: 4"


class InstantLLM(LLM):
    def load(self) -> None:
        super().load()

    @property
    def model_name(self) -> str:
        return "instant"

    def generate(self, inputs, num_generations: int = 1, max_new_tokens: int = 128):
        return [{"generations": [TEXT] * num_generations, "statistics": {"input_tokens": [0], "output_tokens": [0]}}
                for _ in inputs]


@step(inputs=["image", "questions", "answers"], outputs=["statements_messages", "image_uri"])
def Prepare(inputs: StepInput):
    for row in inputs:
        raw = Path(row["image"]).read_bytes()
        row["image_uri"] = "data:image/png;base64," + base64.b64encode(raw).decode()
        pairs = "\n".join(f"Q: {q}\nA: {a}" for q, a in zip(row["questions"], row["answers"]))
        row["statements_messages"] = [{"role": "user", "content": "Rewrite each pair as one sentence.\n" + pairs}]
    yield inputs

@step(inputs=["questions"], outputs=["focus_messages"])
def FocusPrompt(inputs: StepInput):
    for row in inputs:
        row["focus_messages"] = [{"role": "user", "content": "What to look at for:\n" + "\n".join(row["questions"])}]
    yield inputs

@step(inputs=["image_uri", "statements"], outputs=["extraction_messages"])
def ExtractionPrompt(inputs: StepInput):
    for row in inputs:
        row["extraction_messages"] = [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": row["image_uri"]}},
            {"type": "text", "text": "Describe the image so that these hold:\n" + row["statements"]}]}]
    yield inputs

@step(inputs=["extraction", "questions"], outputs=["think_messages"])
def ThinkPrompt(inputs: StepInput):
    for row in inputs:
        row["think_messages"] = [{"role": "user", "content": f"{row['extraction'][0]}\nQuestion: {row['questions']}"}]
    yield inputs


def main() -> None:
    data, images, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    rows = []
    for entry in json.loads(Path(data).read_text()):
        turns = entry["conversations"]
        qa = [(turns[i]["value"].replace("<image>\n", ""), turns[i + 1]["value"]) for i in range(0, len(turns), 2)]
        rows.append({"id": entry["id"], "image": str(images / entry["image"]), "questions": [q for q, _ in qa], "answers": [a for _, a in qa]})

    with Pipeline(name="overhead") as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=64)
        prepare = Prepare()
        statements = ChatGeneration(llm=InstantLLM(), input_mappings={"messages": "statements_messages"},
                                    output_mappings={"generation": "statements"}, input_batch_size=64)
        focus_prompt = FocusPrompt()
        focus = ChatGeneration(llm=InstantLLM(), input_mappings={"messages": "focus_messages"},
                               output_mappings={"generation": "focus"}, input_batch_size=64)
        extraction_prompt = ExtractionPrompt()
        extraction = ChatGeneration(llm=InstantLLM(), input_mappings={"messages": "extraction_messages"},
                                    output_mappings={"generation": "extraction"}, input_batch_size=64, num_generations=3,
                                    group_generations=True)
        expand = ExpandColumns(columns=["questions"])
        think_prompt = ThinkPrompt()
        think = ChatGeneration(llm=InstantLLM(), input_mappings={"messages": "think_messages"},
                               output_mappings={"generation": "reasoning"}, input_batch_size=64, num_generations=3)
        load >> prepare >> statements >> focus_prompt >> focus >> extraction_prompt >> extraction >> expand >> think_prompt >> think

    started = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    distiset.save_to_disk(out)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": sum(len(d["train"]) for d in distiset.values())}))


if __name__ == "__main__":
    main()
