"""The claims' HTML and figures: every results.json value escaped, the rules shown, fonts readable, symmetry exact."""

from __future__ import annotations

import copy

import torch

from initlab.lab.claims import html as claims_html
from initlab.lab.claims.base import MIN_FONT_SIZE, readable_fonts

EVIL = "<script>alert('x')</script>"


def _item() -> dict:
    rule = {"key": "k", "label": f"label {EVIL}", "role": "control", "op": ">", "threshold": 0.1,
            "threshold_text": "> 0.1", "decision": f"pass when {EVIL}", "predicts": f"opposite {EVIL}",
            "why": "", "status": "pass",
            "measured": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 10, "method": f"bootstrap {EVIL}",
                         "text": f"0.5 [0.4, 0.6] {EVIL}", "samples": []}}
    return {"id": "1' onmouseover='x", "title": EVIL, "statement": EVIL, "references": [EVIL], "group": "claim",
            "hypothesis": f"hyp {EVIL}", "verdict": f"supported{EVIL}", "measurement": EVIL, "rules": [rule],
            "figures": [f"figures/{EVIL}.png"], "tables": {EVIL: [{EVIL: EVIL}]}, "notes": EVIL,
            "reference": EVIL, "setting": EVIL, "seeds": EVIL, "seconds": 1.0, "error": EVIL, "design": EVIL,
            "amendments": [{"date": EVIL, "change": EVIL, "reason": EVIL}]}


def test_every_value_from_results_json_is_escaped_in_the_claim_html() -> None:
    item = _item()
    page = claims_html.claim_section(item, lambda name: f"<figure>{claims_html.escape(name)}</figure>")
    page += claims_html.summary_table([item]) + claims_html.counts([item])
    assert "<script>" not in page and "onmouseover='x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_a_claim_section_shows_hypothesis_rule_interval_control_and_verdict() -> None:
    item = copy.deepcopy(_item())
    item.update(id="7", title="t", verdict="supported", hypothesis="the hypothesis")
    page = claims_html.claim_section(item, lambda name: "")
    item.update(design="the stated principle", amendments=[{"date": "2026-12-02", "change": "lr 0.01 -> 0.05",
                                                             "reason": "after runs had been seen"}])
    page = claims_html.claim_section(item, lambda name: "")
    for text in ("the hypothesis", "0.5 [0.4, 0.6]", "&gt; 0.1", "control", "opposite", "pass when",
                 "data-verdict='supported'", "the stated principle", "2026-12-02: lr 0.01 -&gt; 0.05"):
        assert text in page, text


def test_figure_text_is_raised_to_the_minimum_font_size() -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([1e-7, 2e-7], [1, 2], label="curve")
    axis.tick_params(labelsize=5)
    axis.legend(fontsize=6)
    axis.set_title("t", fontsize=4)
    figure.canvas.draw()
    readable_fonts(figure)
    sizes = [text.get_fontsize() for text in figure.findobj(lambda a: hasattr(a, "get_fontsize"))]
    assert min(sizes) >= MIN_FONT_SIZE
    # the axis multiplier (offset text) is among them and is drawn
    assert axis.xaxis.get_offset_text().get_fontsize() >= MIN_FONT_SIZE
    plt.close(figure)


def test_constant_units_stay_bit_identical_with_order_fixed_products_on_two_threads() -> None:
    from initlab.lab.batched import train_stacked
    from initlab.lab.claims.symmetry import OrderedMLP, _ordered_init, _ordered_split

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        splits = [_ordered_split(seed, 64) for seed in (0, 1)]
        models = [OrderedMLP(64, 8, 10).double() for _ in splits]
        for seed, model in enumerate(models):
            _ordered_init("constant")(model, seed)
        train_stacked(models, splits, [0, 1], steps=40, lr=0.5)
    finally:
        torch.set_num_threads(previous)
    for model in models:
        weight = model.weight1.detach()
        assert torch.equal(weight, weight[:1].expand_as(weight))  # every hidden unit the same, bit for bit
        assert float((weight - weight.mean()).abs().max()) > 0 or float(weight.abs().max()) > 0


def test_claim_training_does_not_depend_on_the_global_generator() -> None:
    from initlab.lab.claims._common import Arm, train_arms

    arms = [Arm("dropout", "glorot_uniform")]
    results = []
    for state in (1, 2):
        torch.manual_seed(state)  # whatever ran before in the process
        runs = train_arms("mlp:*-16-*:tanh+dropout=0.3", arms, [0, 1], steps=5, batch_size=32, eval_every=5)
        results.append([row["loss"] for result in runs["dropout"] for row in result.history])
    assert results[0] == results[1]
