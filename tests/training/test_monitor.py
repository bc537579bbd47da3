"""Health warnings, NaN stops and the metrics file."""

import json
import math

import numpy as np
import pytest

from ssgan_jax.training.health import AdversaryHealth, TrainingDiverged, check_finite
from ssgan_jax.training.monitor import JsonLinesWriter, ReportProgress, progress_line
from tests.no_tensorflow import NO_TENSORFLOW


def test_adversary_won_and_idle_warnings_once_per_window():
    h = AdversaryHealth(window=4, won_accuracy=0.99, idle_margin=0.02)
    out = [h.update(s, 1.0, 1.0) for s in range(1, 9)]
    assert out[:3] == [None] * 3  # the window is not full yet
    assert "has won" in out[3] and "step 4" in out[3]
    assert out[4:7] == [None] * 3 and "has won" in out[7]  # not repeated within a window
    h = AdversaryHealth(window=3, won_accuracy=0.99, idle_margin=0.02)
    out = [h.update(s, 0.5, 0.51) for s in range(1, 4)]
    assert "learns nothing" in out[2]
    h = AdversaryHealth(window=3, won_accuracy=0.99, idle_margin=0.02)
    assert [h.update(s, 0.8, 0.7) for s in range(1, 6)] == [None] * 5  # a healthy fight
    # leaving chance (the start of phase 2): near 0.5 on average, but rising: not idle
    h = AdversaryHealth(window=4, won_accuracy=0.99, idle_margin=0.02)
    assert [h.update(s, a, a) for s, a in enumerate((0.47, 0.48, 0.52, 0.54), 1)] == [None] * 4


def test_non_finite_loss_stops_naming_it_and_the_checkpoint():
    check_finite(3, {"ce": 1.0, "loss_d": 0.5}, 2)
    with pytest.raises(TrainingDiverged, match=r"step 7.*'adv': nan.*step 5\) is kept"):
        check_finite(7, {"ce": 1.0, "adv": math.nan}, 5)
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written"):
        check_finite(1, {"ce": math.inf}, None)


def test_jsonl_writer_and_progress(tmp_path):
    w = JsonLinesWriter(str(tmp_path / "m.jsonl"))
    w.write_scalars(5, {"train/ce": 1.5})
    w.write_scalars(10, {"val/miou": 0.25})
    w.close()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines == [{"step": 5, "train/ce": 1.5}, {"step": 10, "val/miou": 0.25}]
    line = progress_line(50, 100, 1, {"ce": 0.5}, rate=10.0)
    assert "step 50/100" in line and "10.00 steps/s" in line and "ETA 0m05s" in line


def test_report_progress_rate_and_writer(tmp_path):
    """ReportProgress: reports every 5 steps and at the phase end (step 7), writes
    steps_per_sec and the time of each timed part to the writer and keeps the rate for our
    line."""
    w = JsonLinesWriter(str(tmp_path / "m.jsonl"))
    p = ReportProgress(total=20, start_step=0, every_steps=5, writer=w, on_steps=(7,))
    times = {s: 2.0 * s for s in range(1, 11)}  # 0.5 steps/s, from t = 0 at step 0
    p._previous_time = 0.0  # the clock started at t = 0
    with p.timed("input"):
        pass
    p.parts["input"] = 1.5  # (a known duration)
    reported = [s for s in range(1, 11) if p(s, t=times[s])]
    assert reported == [5, 7, 10] and p.rate == pytest.approx(0.5)
    w.close()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    rates = [x["steps_per_sec"] for x in lines if "steps_per_sec" in x]
    assert rates == pytest.approx([0.5, 0.5, 0.5])
    assert [x["time/input_s"] for x in lines] == [1.5, 1.5, 1.5]


def test_the_eta_leaves_out_compilation_and_validation():
    """Steps take 0.5 s; the first interval also holds a 30 s compilation and a 10 s
    validation: the rate of that report is 10 / 45 steps/s, the ETA's rate stays 2."""
    p = ReportProgress(total=100, start_step=0, every_steps=10, writer=None)
    p._previous_time = 0.0
    p.parts["compile"], p.parts["validation"], p.parts["input"] = 30.0, 10.0, 1.0
    assert p(10, t=45.0)
    assert p.rate == pytest.approx(10 / 45) and p.steady_rate == pytest.approx(2.0)
    assert p(20, t=50.0) and p.steady_rate == pytest.approx(2.0)  # nothing else: 10 in 5 s
    line = progress_line(20, 100, 1, {"ce": 1.0}, p.rate, p.steady_rate)
    assert line.endswith("| 2.00 steps/s ETA 0m40s")


def test_a_resumed_run_keeps_its_rows_up_to_its_checkpoint(tmp_path):
    """metrics.jsonl before a resume from step 4: the rows of later steps (written again by
    the resumed run) and a line a kill cut short go; hparams stay; a fresh start empties it."""
    from ssgan_jax.training.monitor import trim_lines

    path = tmp_path / "m.jsonl"
    rows = [{"hparams": {"a": "1"}}, {"step": 2, "train/ce": 1.0}, {"step": 4, "val/miou": 0.2},
            {"step": 5, "train/ce": 0.5}]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "train/'
    path.write_text(text)
    trim_lines(str(path), 6)  # only the cut line goes
    assert [json.loads(x) for x in path.read_text().splitlines()] == rows
    trim_lines(str(path), 4)
    assert [json.loads(x) for x in path.read_text().splitlines()] == rows[:3]
    w = JsonLinesWriter(str(path))
    w.write_scalars(5, {"train/ce": 0.25})
    w.close()
    assert json.loads(path.read_text().splitlines()[-1]) == {"step": 5, "train/ce": 0.25}
    trim_lines(str(path), None)
    assert path.read_text() == ""


def test_in_phase_1_the_eta_is_to_phase_2():
    """Phase 2 runs the adversary too, at another rate: phase 1's rate times the steps left
    to the end of the run would be wrong, so phase 1 says when it ends; phase 2, the run."""
    line = progress_line(20, 100, 1, {"ce": 1.0}, 2.0, phase_end=60)
    assert line.endswith("| 2.00 steps/s ETA 0m20s to phase 2")
    assert progress_line(70, 100, 2, {"ce": 1.0}, 2.0, phase_end=100).endswith(
        "| 2.00 steps/s ETA 0m15s")
    assert progress_line(20, 60, 1, {"ce": 1.0}, 2.0, phase_end=60).endswith(
        "ETA 0m20s")  # phase 1 alone: its end is the run's


def test_tensorboard_events_without_tensorflow(tmp_path):
    """Scalars, pictures and hparams in event files TensorBoard reads, written by a process
    where TensorFlow cannot be imported."""
    import subprocess
    import sys

    script = f"""
import sys
{NO_TENSORFLOW}
import numpy as np
from ssgan_jax.training.monitor import create_writer
w = create_writer({str(tmp_path)!r}, 0)
w.write_hparams({{"model.width": 16, "data.crop_size": (64, 96)}})
w.write_scalars(5, {{"train/ce": 1.5}})
w.write_scalars(10, {{"train/ce": 1.25, "val/miou": 0.5}})
w.write_images(10, {{"val/pictures": np.full((2, 4, 6, 3), 200, np.uint8)}})
w.close()
assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"),
                                             size_guidance={"images": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/ce")] == [(5, 1.5), (10, 1.25)]
    assert [e.value for e in acc.Scalars("val/miou")] == [0.5]
    images = acc.Images("val/pictures/1")
    assert images[0].step == 10 and (images[0].height, images[0].width) == (4, 6)
    import io

    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(
        images[0].encoded_image_string))), np.full((4, 6, 3), 200, np.uint8))
    assert "_hparams_/session_start_info" in acc.Tags()["tensors"]


def test_a_resumed_runs_tensorboard_shows_each_step_once(tmp_path):
    """A run killed after step 6 and resumed from its checkpoint at step 4 logs steps 5 and 6
    again: TensorBoard shows the resumed run's (a SessionLog START at step 5 orphans the
    stopped run's), and the steps up to 4 once."""
    from tensorboard.backend.event_processing import event_accumulator

    from ssgan_jax.training.monitor import create_writer

    w = create_writer(str(tmp_path), 0)
    for s in range(1, 7):
        w.write_scalars(s, {"train/ce": float(s)})
    w.close()
    w = create_writer(str(tmp_path), 0, resumed_from=4)
    for s in range(5, 9):
        w.write_scalars(s, {"train/ce": 10.0 + s})
    w.close()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/ce")] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 15.0), (6, 16.0), (7, 17.0), (8, 18.0)]


def test_input_health_says_void_and_padded_batches_once():
    from ssgan_jax.core import config as config_lib
    from ssgan_jax.training.health import InputHealth

    config = config_lib.get_config()
    config.data.crop_size = (400, 600)
    health = InputHealth(config)
    fine = {"label": np.zeros((2, 4, 400, 600), np.int32),
            "sizes": np.full((2, 4, 2), (400, 600), np.int32)}
    assert health.check(1, fine) == []
    void = {"label": np.full((2, 4, 400, 600), 255, np.int32),
            "sizes": np.full((2, 4, 2), (90, 120), np.int32)}  # 120x90 images in 400x600
    labels, padding = health.check(2, void)
    assert "step 2: 0.00% of the batch's pixels are labelled (0 of 1920000" in labels
    assert "the images fill 4.5% of the crops" in padding and "400, 600" in padding
    assert health.check(3, void) == []  # once per run
