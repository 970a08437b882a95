"""Text support: how far a text backs a claim, at the level of words (no model). Used by the
filters (coverage, agreement, leakage), the verify stage (sentences), the oracle's judge,
the truth checks of compare and the experiment, and the real-text benchmarks.

- `text`: tokens, stems, sentences, windows and the scorers over them
- `lexicon`: word relations (synonyms, hypernyms, measures)
- `lexical`: term-level support of a sentence by a text (numbers, colours, relations)
- `claims`: a claim split into its facts, each checked against the evidence
"""
