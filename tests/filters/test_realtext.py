"""The text filters on real teachers' prose (tests/realtext/): the failure modes found on real
descriptions, one case each, and the figures measured on the corpus at the defaults
(tests/bench/bench_realtext.py prints them with a threshold sweep)."""

import pytest

from pipelines.support.lexical import support
from tests.bench.bench_realtext import agreement_row, coverage_row, coverage_scores
from tests.realtext import answer_agreement, coverage_rates

SUBWAY = "What brand is featured in this advertisement?"


@pytest.mark.parametrize("text, claim, question, supported", [
    ("A player is running with the ball.", "A person is running with the ball.", None, True),  # broader word
    ("The image shows a jet on the runway.", "There is an airplane on the runway.", None, True),  # narrower word
    ("A man rides a motorbike.", "A man rides a motorcycle.", None, True),  # synonym
    ("A black dog lies on the sofa.", "The dog is black.", None, True),  # word order
    ("A box of doughnuts sits on the table.", "There are donuts on the table.", None, True),  # spelling
    ("Two skiers carry their skis.", "The people carry skis.", None, True),  # stemming, people/person
    ("Two people stand by the door.", "There are 2 persons by the door.", None, True),  # number word, noun synonym
    ("The inauguration of London's system was in 1863.", "London's system was inaugurated in 1863.", None, True),  # derived form
    ("A Subway ad is on the wall.", "The brand featured in this advertisement is Subway.", SUBWAY, True),  # the question's words
    ("A Subway ad is on the wall.", "The brand featured in this advertisement is Nike.", SUBWAY, False),
    ("A red bird of paradise flower grows in the pot.", "There is a bird.", None, False),  # one shared word
    ("Three red circles and two green squares.", "There are 2 red circles.", None, False),  # count on another noun
    ("A blue circle and a red square.", "The circle is red.", None, False),  # colour of another object
    ("The clock on the wall shows 10:40.", "The clock shows 10:45.", None, False),
    ("The car is facing left.", "The car faces the right side.", None, False),  # antonym
    ("Kyoto's is 11 km long, while Los Angeles spans 28 km.", "The Kyoto network has 28 kilometres of route.", None, False),
])
def test_support_v2_on_what_real_descriptions_do(text, claim, question, supported):
    assert (support(claim, text, "lexical", question) >= 0.8) is supported


def test_statement_coverage_at_its_defaults_on_real_descriptions():
    v2 = coverage_rates()
    assert v2.false_accepts <= 0.02 and v2.recall >= 0.38  # measured: 0.399 at 0.014
    v1 = coverage_rates(scorer="recall")
    assert v2.recall >= 1.5 * v1.recall and v2.false_accepts <= v1.false_accepts  # v1 default: 0.252 at 0.018


def test_v2_beats_v1_over_the_middle_of_the_curve():
    v2, v1 = coverage_scores("lexical"), coverage_scores("recall")
    # at about 7-8% false accepts: v2 0.528 at 0.073 (min_score 0.7), v1 0.442 at 0.082 (0.6)
    r2, fa2, *_ = coverage_row(v2, 0.7)
    r1, fa1, *_ = coverage_row(v1, 0.6)
    assert r2 > r1 + 0.05 and fa2 <= fa1


def test_agreement_keeps_far_more_faithful_records_than_v1_and_still_catches_planted_ones():
    rejected, caught, *_ = agreement_row(5)
    assert rejected <= 0.55 and caught >= 0.80  # measured: 0.514 and 0.800 (v1: 1.000 and 1.000)
    rejected, caught, *_ = agreement_row(2)
    assert rejected <= 0.70 and caught >= 0.80  # measured: 0.635 and 0.840 (v1: 0.993 and 1.000)


def test_answer_matching_agrees_with_the_labels():
    short, n_short, _ = answer_agreement("short")
    free, n_free, _ = answer_agreement("free")
    assert n_short == 154 and short >= 0.95  # measured 0.968
    assert n_free == 135 and free >= 0.80  # measured 0.867
