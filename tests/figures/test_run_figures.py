"""A run's figures are written as PNG and PDF (tiny run)."""


from __future__ import annotations

from artifact.analysis import aggregate as agg


def test_figures_are_written_as_png_and_pdf(tiny_run):
    from artifact.figures.run import plot_run

    _, _, run_dir, _ = tiny_run
    agg.aggregate_run(run_dir, n_resamples=200)
    written = plot_run(run_dir, per_fact=1, metrics=("prob",))
    names = {p.name for p in written}
    for stem in ("aie_heatmap_hidden_prob", "aie_heatmap_mlp_prob", "aie_heatmap_attn_prob", "aie_layers_prob",
                 "severed_prob", "fact-10-mlp"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    assert all(p.stat().st_size > 1000 for p in written)
