"""The torch-free core every other package imports: the experiment's vocabulary (arms, kinds, token groups,
metrics, carry-over modalities and directions), the layout of results folders and expected profiles and the object
that reads a results folder (`results.ResultsFolder`), SpiritLM's checkpoint layout, token groups and atomic file
writes. Nothing here imports torch, numpy or the rest of the artifact, so `verify.py`, the CLI's
argument parsing and shell helpers stay fast and can name things without copying them."""
