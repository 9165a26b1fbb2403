"""Every figure of the artifact, in one style (`style.py`), drawn from stored numbers (no statistics computed here).

- `trace.py`      ROME-style heatmap of one trace (tokens x layers)
- `run.py`        a run's figures: token-group x layer heatmaps, AIE-by-layer curves, the severed path, per-fact maps
- `comparison.py` T->T against S->T: curves with bands and their difference, heatmap pairs, the normalised view
- `speech.py`     one spoken fact: waveform, subject span, speech-token boundaries
"""
