"""The release rule (dbd_core.release.judge): each criterion can fail on its own, and says why."""

from dbd_core.release import judge

SHIPPED = {"mae": 0.129, "f_beta": 0.852, "nll": 0.250}


def test_better_on_every_count_ships():
    v = judge({"mae": 0.124, "f_beta": 0.854, "nll": 0.249}, SHIPPED)
    assert v.ship and len(v.reasons) == 3 and str(v).startswith("ship:")


def test_each_criterion_alone_keeps_the_shipped_model():
    cases = {
        "MAE": {"mae": 0.129, "f_beta": 0.860, "nll": 0.240},        # equal MAE is not lower
        "F-beta": {"mae": 0.120, "f_beta": 0.848, "nll": 0.240},     # 0.004 drop > 0.003
        "log-loss": {"mae": 0.124, "f_beta": 0.854, "nll": 0.267},   # over-confident: v0.4's case
    }
    for failing, cand in cases.items():
        v = judge(cand, SHIPPED)
        assert not v.ship, failing
        bad = [r for r in v.reasons if "not lower" in r or "beyond" in r]
        assert len(bad) == 1 and bad[0].startswith(failing), (failing, v.reasons)


def test_the_allowed_drop_is_inclusive_and_old_summaries_skip_nll():
    assert judge({"mae": 0.128, "f_beta": 0.849, "nll": 0.255}, SHIPPED).ship
    v = judge({"mae": 0.128, "f_beta": 0.852}, {"mae": 0.129, "f_beta": 0.852})
    assert v.ship and "not judged" in v.reasons[-1]
