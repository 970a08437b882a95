"""train_min: the bundled minimal trainer (perception and reasoner SFT on a published dataset)."""
