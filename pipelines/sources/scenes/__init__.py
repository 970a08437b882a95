"""Synthetic scene families, by name."""

from pipelines.sources.scenes.barchart import BarChart
from pipelines.sources.scenes.base import Family
from pipelines.sources.scenes.beakers import Beakers
from pipelines.sources.scenes.clock import Clock
from pipelines.sources.scenes.receipt import Receipt
from pipelines.sources.scenes.shapes import Shapes
from pipelines.sources.scenes.sign import Sign

FAMILIES: dict[str, Family] = {f.name: f for f in (Beakers(), Shapes(), BarChart(), Sign(), Clock(), Receipt())}

__all__ = ["FAMILIES", "Family"]
