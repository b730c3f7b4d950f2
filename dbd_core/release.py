"""The release rule: does a candidate's benchmark summary justify replacing the shipped model's?

Written down as code so the rule is fixed before a run is scored, and so the same rule judges every
stage: lower MAE, F-beta at most ``max_f_drop`` lower (the bench's noise on 200 renders), and pixel
log-loss at most ``max_nll_rise`` higher, so a model cannot win MAE by growing over-confident alone
(student v0.4 did: MAE 0.129 -> 0.124 with the same AUC, log-loss up; benchmarks/targets.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_F_DROP = 0.003
MAX_NLL_RISE = 0.005
_TIE = 1e-9  # 0.849 - 0.852 is -0.0030000000000000027 in floats: the stated bounds are inclusive


@dataclass
class Verdict:
    ship: bool
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return ("ship" if self.ship else "keep the shipped model") + ": " + "; ".join(self.reasons)


def judge(candidate: dict, shipped: dict, max_f_drop: float = MAX_F_DROP,
          max_nll_rise: float = MAX_NLL_RISE) -> Verdict:
    """Two ``metrics.Evaluator.summary()`` dicts on the same set -> Verdict with one reason per criterion.
    A summary without ``nll`` (written before it was measured) skips that criterion and says so."""
    d_mae = candidate["mae"] - shipped["mae"]
    bounds = within_bounds(candidate, shipped, max_f_drop, max_nll_rise)
    reasons = [f"MAE {shipped['mae']:.4f} -> {candidate['mae']:.4f} ({'lower' if d_mae < 0 else 'not lower'})"]
    return Verdict(d_mae < 0 and bounds.ship, reasons + bounds.reasons)


def within_bounds(candidate: dict, shipped: dict, max_f_drop: float = MAX_F_DROP,
                  max_nll_rise: float = MAX_NLL_RISE) -> Verdict:
    """The rule's guards without its MAE criterion: F-beta and log-loss no worse than the bounds allow
    (training selects the lowest MAE among the validations that pass them, val.score = "release")."""
    reasons, ok = [], True
    d_f = candidate["f_beta"] - shipped["f_beta"]
    f_ok = d_f >= -max_f_drop - _TIE
    ok &= f_ok
    reasons.append(f"F-beta {shipped['f_beta']:.4f} -> {candidate['f_beta']:.4f} "
                   f"({'within' if f_ok else 'beyond'} the {max_f_drop} allowed drop)")
    if "nll" in candidate and "nll" in shipped:
        d_nll = candidate["nll"] - shipped["nll"]
        nll_ok = d_nll <= max_nll_rise + _TIE
        ok &= nll_ok
        reasons.append(f"log-loss {shipped['nll']:.4f} -> {candidate['nll']:.4f} "
                       f"({'within' if nll_ok else 'beyond'} the {max_nll_rise} allowed rise)")
    else:
        reasons.append("log-loss not in both summaries, not judged")
    return Verdict(bool(ok), reasons)
