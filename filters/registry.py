"""Filters by the name a recipe uses."""

from filters.correctness import answer_correct
from filters.sufficiency import sufficiency

FILTERS = {
    "answer_correct": answer_correct,
    "sufficiency": sufficiency,
}
