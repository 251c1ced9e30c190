"""Training smoke test: `engines.training.train` runs a few steps on a few hundred real FER+ faces, checkpoints,
resumes, and `engines.training.export` turns the checkpoint into a valid ONNX model that describes itself and
runs on the engine. Needs torch (the `train` extra): skipped where it does not import."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from schemas.emotions import EMOTIONS
from engines.model_meta import read_metadata
from engines.onnx_engine import OnnxRuntimeEngine

pytest.importorskip("torch", reason="training needs torch (pip install -e '.[train]'); CI installs only '.[test]'")

TRAIN_FACES, VALIDATION_FACES = 320, 96


@pytest.fixture(scope="module")
def small_cache(training_faces, public_test_faces, tmp_path_factory) -> Path:
    """An aligned-face cache in `engines.ferplus.load_splits`' format holding only a few hundred real faces."""
    cache = tmp_path_factory.mktemp("small-cache")
    train, val = training_faces, public_test_faces
    np.savez_compressed(
        cache / "ferplus_aligned_48.npz",
        aligned=np.concatenate([train.pixels[:TRAIN_FACES], val.pixels[:VALIDATION_FACES]]),
        votes=np.concatenate([train.votes[:TRAIN_FACES], val.votes[:VALIDATION_FACES]]),
        labels=np.concatenate([train.fer2013_label[:TRAIN_FACES], val.fer2013_label[:VALIDATION_FACES]]),
        usage=np.array(["Training"] * TRAIN_FACES + ["PublicTest"] * VALIDATION_FACES),
    )
    return cache


def test_a_few_training_steps_export_a_valid_model(small_cache, tmp_path):
    from engines.training.export import export_checkpoint, load_checkpoint
    from engines.training.train import main as train

    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--cache-dir", str(small_cache), "--batch", "32", "--widths", "8", "16", "32",
              "--blocks", "1", "1", "1", "--threads", "1", "--augment", "domain", "--logit-adjust", "0.5"]
    train(common + ["--epochs", "2"])
    records = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 and 0 <= r["val_majority_acc"] <= 1 for r in records)
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()

    train(common + ["--epochs", "2", "--finish", "1"])  # resumes from last.pt and ends in one more epoch
    records = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["lr"] == pytest.approx(0.0, abs=1e-9)

    out = tmp_path / "smoke.onnx"
    summary = export_checkpoint(run / "best.pt", out, "0.0.1-smoke", small_cache)  # checks ORT == torch on real faces
    assert str(out) in summary and "0.0.1-smoke" in summary
    onnx.checker.check_model(onnx.load(str(out)))
    meta = read_metadata(out)
    assert (meta.classes, meta.input_size, meta.input_scale, meta.model_version) == (EMOTIONS, 48, "pm1", "0.0.1-smoke")
    net, info = load_checkpoint(run / "best.pt")
    assert info["args"]["widths"] == [8, 16, 32] and 1 <= info["epoch"] <= 3
    engine = OnnxRuntimeEngine(out)
    probs = engine.infer(np.load(Path(__file__).resolve().parents[1] / "producers" / "sample" / "faces.npz")["faces"])
    assert probs.shape == (32, len(EMOTIONS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_a_student_distils_from_a_teacher_checkpoint_and_a_shipped_model(small_cache, tmp_path):
    """--teacher with a checkpoint and a shipped .onnx file: a smaller student (its own widths, blocks and stem)
    trains on the ensemble's predictions too, and exports with its own architecture."""
    import torch

    from engines.model_files import INT8_MODEL
    from engines.training.export import export_checkpoint, load_checkpoint
    from engines.training.model import multiply_adds
    from engines.training.train import distillation_loss, main as train

    common = ["--cache-dir", str(small_cache), "--batch", "32", "--threads", "1", "--epochs", "1"]
    train(common + ["--run-dir", str(tmp_path / "teacher"), "--widths", "16", "32", "64", "--blocks", "1", "1", "1"])
    student = tmp_path / "student"
    teachers = [str(tmp_path / "teacher" / "best.pt"), str(INT8_MODEL)]
    train(common + ["--run-dir", str(student), "--widths", "8", "16", "32", "--blocks", "0", "1", "1", "--stem", "8",
                    "--teacher", *teachers, "--distill-weight", "0.7", "--temperature", "4"])
    record = json.loads((student / "train.log").read_text().splitlines()[-1])
    assert np.isfinite(record["loss"]) and record["loss"] > 0
    net, info = load_checkpoint(student / "best.pt")
    assert (info["args"]["teacher"], info["args"]["stem"]) == (teachers, 8)
    assert json.loads((student / "args.json").read_text())["teacher"] == teachers
    assert net.features[0][0].out_channels == 8
    teacher_net, _ = load_checkpoint(tmp_path / "teacher" / "best.pt")
    assert multiply_adds(net) < multiply_adds(teacher_net) / 3
    out = tmp_path / "student.onnx"
    export_checkpoint(student / "best.pt", out, "0.0.2-student", small_cache)
    assert OnnxRuntimeEngine(out).infer(np.zeros((2, 48, 48), np.uint8)).shape == (2, len(EMOTIONS))
    # The distillation term is zero when the student matches the teacher, and positive otherwise.
    logits = torch.tensor([[2.0, 0.5, -1.0, 0, 0, 0, 0, 0]])
    assert distillation_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-4)
    assert distillation_loss(logits, logits.flip(1), 4.0).item() > 0


def test_an_onnx_teacher_gives_the_shipped_models_log_probabilities_and_an_ensemble_averages_them(public_test_faces):
    from engines.model_files import DEFAULT_MODEL, INT8_MODEL
    from engines.training.teachers import OnnxTeacher, TeacherEnsemble, load_teachers
    from engines.training.train import to_input

    faces = public_test_faces.pixels[:64]
    x = to_input(faces)
    float_teacher, int8_teacher = OnnxTeacher(DEFAULT_MODEL), OnnxTeacher(INT8_MODEL)
    float_probs = OnnxRuntimeEngine(DEFAULT_MODEL).infer(faces)
    np.testing.assert_allclose(float_teacher(x).exp().numpy(), float_probs, atol=1e-5)
    both = load_teachers([DEFAULT_MODEL, INT8_MODEL])
    assert isinstance(both, TeacherEnsemble) and len(both.teachers) == 2
    np.testing.assert_allclose(both(x).numpy(), (float_teacher(x).numpy() + int8_teacher(x).numpy()) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="at least one teacher"):
        TeacherEnsemble([])


@pytest.mark.parametrize("kind", ["OnnxTeacher", "GraphTeacher"])
def test_an_onnx_teacher_refuses_a_model_with_another_input(kind, tmp_path):
    from engines.model_files import DEFAULT_MODEL
    from engines.model_meta import read_metadata, write_metadata
    from engines.training import teachers

    other = tmp_path / "other-scale.onnx"
    other.write_bytes(DEFAULT_MODEL.read_bytes())
    meta = read_metadata(other)
    write_metadata(other, type(meta)(meta.classes, meta.input_size, "01", meta.model_version))
    with pytest.raises(ValueError, match="pm1 scale"):
        getattr(teachers, kind)(other)


def test_a_model_files_graph_run_by_torch_teaches_what_onnx_runtime_does(public_test_faces):
    """On a GPU a model file teaches through its graph in torch (engines/training/onnx_graph.py): the same
    log-probabilities as ONNX Runtime on real faces (here on the CPU, the only device this machine has)."""
    import torch

    from engines.model_files import DEFAULT_MODEL
    from engines.training.teachers import GraphTeacher, OnnxTeacher, load_teachers
    from engines.training.train import to_input

    x = to_input(public_test_faces.pixels[:64])
    graph, runtime = GraphTeacher(DEFAULT_MODEL)(x), OnnxTeacher(DEFAULT_MODEL)(x)
    assert graph.shape == (64, len(EMOTIONS))
    np.testing.assert_allclose(graph.exp().numpy(), runtime.exp().numpy(), atol=1e-5)
    assert (graph.argmax(1) == runtime.argmax(1)).all()
    on_cpu = load_teachers([DEFAULT_MODEL], device=torch.device("cpu"))
    assert isinstance(on_cpu.teachers[0], OnnxTeacher)  # ONNX Runtime is the faster of the two on the CPU


def test_a_graph_teacher_refuses_the_int8_file_by_its_operators():
    from engines.model_files import INT8_MODEL
    from engines.training.teachers import GraphTeacher

    with pytest.raises(ValueError, match=r"operators .*QLinearConv.* give the float model file"):
        GraphTeacher(INT8_MODEL)


def test_export_folds_the_prior_correction_into_the_graph(small_cache, tmp_path):
    """--prior-tau: the exported file's probabilities are the plain export's times prior^-tau, renormalized."""
    from engines.ferplus import load_splits, prior_bias, training_prior
    from engines.training.export import export_checkpoint, main as export
    from engines.training.train import main as train

    run = tmp_path / "run"
    train(["--run-dir", str(run), "--cache-dir", str(small_cache), "--batch", "32", "--threads", "1", "--epochs", "1",
           "--widths", "8", "16", "32", "--blocks", "1", "1", "1"])
    plain, corrected = tmp_path / "plain.onnx", tmp_path / "corrected.onnx"
    export_checkpoint(run / "best.pt", plain, "0.0.3", small_cache)
    export(["--checkpoint", str(run / "best.pt"), "--out", str(corrected), "--version", "0.0.3-tau",
            "--cache-dir", str(small_cache), "--prior-tau", "0.2"])
    faces = np.load(Path(__file__).resolve().parents[1] / "producers" / "sample" / "faces.npz")["faces"]
    base, shifted = OnnxRuntimeEngine(plain).infer(faces), OnnxRuntimeEngine(corrected).infer(faces)
    prior = training_prior(load_splits(small_cache, progress=False)["Training"].votes)
    expected = base * (prior + 1e-6) ** -0.2
    np.testing.assert_allclose(shifted, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert read_metadata(corrected).model_version == "0.0.3-tau"
    # The correction is folded into the final Gemm's bias: no extra operator on the inference path.
    assert [node.op_type for node in onnx.load(str(corrected)).graph.node][-2:] == ["Gemm", "Softmax"]
    assert len(onnx.load(str(corrected)).graph.node) == len(onnx.load(str(plain)).graph.node)
    assert not np.allclose(shifted, base, atol=1e-3)
    # The CLI's `moviemotion engine export --prior-tau` writes the same graph, and refuses a negative tau.
    from click.testing import CliRunner

    from moviemotion.cli import main as cli

    via_cli = tmp_path / "cli.onnx"
    common = ["engine", "export", "--checkpoint", str(run / "best.pt"), "--out", str(via_cli), "--version", "0.0.3-cli",
              "--cache-dir", str(small_cache)]
    result = CliRunner().invoke(cli, common + ["--prior-tau", "0.2"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(OnnxRuntimeEngine(via_cli).infer(faces), shifted, atol=1e-6)
    result = CliRunner().invoke(cli, common + ["--prior-tau", "-0.1"])
    assert result.exit_code == 2 and "--prior-tau" in result.output
    with pytest.raises(ValueError, match="tau must be >= 0"):
        prior_bias(prior, -0.1)


def test_multiply_adds_of_the_model_1_architecture():
    from engines.training.model import EmotionNet, multiply_adds

    assert multiply_adds(EmotionNet()) == pytest.approx(61.4e6, rel=0.01)


def test_a_depthwise_separable_net_trains_exports_and_reloads_as_itself(small_cache, tmp_path):
    """--block separable: depthwise 3x3 + pointwise 1x1 in the blocks and transitions; the checkpoint names its
    block kind, so export and teachers rebuild the same net (export checks ONNX Runtime against torch)."""
    import torch

    from engines.training.export import export_checkpoint, load_checkpoint
    from engines.training.model import EmotionNet, multiply_adds
    from engines.training.train import main as train

    run = tmp_path / "run"
    train(["--run-dir", str(run), "--cache-dir", str(small_cache), "--batch", "32", "--threads", "1", "--epochs", "1",
           "--widths", "16", "32", "64", "--blocks", "1", "1", "1", "--block", "separable"])
    net, info = load_checkpoint(run / "best.pt")
    assert info["args"]["block"] == "separable"
    assert any(isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1 for m in net.modules())
    export_checkpoint(run / "best.pt", tmp_path / "separable.onnx", "0.0.4-separable", small_cache)
    operators = [n.op_type for n in onnx.load(str(tmp_path / "separable.onnx")).graph.node]
    assert operators.count("Conv") == 1 + 2 * 3 + 4 * 3  # the stem, 3 separable transitions, 3 separable blocks
    basic = EmotionNet(widths=(64, 128, 256), blocks=(1, 2, 2))
    separable = EmotionNet(widths=(64, 128, 256), blocks=(1, 2, 2), block="separable")
    assert multiply_adds(separable) < multiply_adds(basic) / 6
    with pytest.raises(ValueError, match="unknown block kind 'inverted'"):
        EmotionNet(block="inverted")


def test_an_epochs_batches_do_not_depend_on_the_number_of_augmenting_workers(training_faces):
    """Each batch is a function of (seed, epoch, step): workers on a GPU machine give the batches that the
    training process itself gives on the CPU, and a resumed run continues them exactly."""
    import torch

    from engines.ferplus import soft_targets
    from engines.training.augment import domain_shift
    from engines.training.batches import EpochBatches, epoch_loader
    from engines.training.train import to_input

    targets, usable = soft_targets(training_faces.votes[:256])
    x, y = to_input(training_faces.pixels[:256][usable]), torch.from_numpy(targets[usable])
    inline = list(epoch_loader(EpochBatches(x, y, 32, domain_shift, seed=7, epoch=3), workers=0))
    ahead = list(epoch_loader(EpochBatches(x, y, 32, domain_shift, seed=7, epoch=3), workers=2))
    assert len(inline) == len(ahead) == len(x) // 32
    for (xa, ya), (xb, yb) in zip(inline, ahead):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    next_epoch = EpochBatches(x, y, 32, domain_shift, seed=7, epoch=4)[0][0]
    assert not torch.equal(next_epoch, inline[0][0])
    with pytest.raises(ValueError, match="do not fill one batch"):
        EpochBatches(x[:8], y[:8], 32, domain_shift, seed=7, epoch=0)


def test_a_run_on_a_training_pack_ends_its_schedule_within_its_time_budget(training_faces, public_test_faces,
                                                                             tmp_path):
    """--data reads the pack a GPU machine receives; --budget-minutes re-plans the one-cycle schedule over the
    epochs that fit (it still warms up to the peak and ends near 0), and a re-run of the finished run trains no
    more."""
    from engines.training.pack import write_pack
    from engines.training.train import epochs_that_fit, main as train

    pack = write_pack({"Training": training_faces.subset(np.arange(len(training_faces)) < TRAIN_FACES),
                       "PublicTest": public_test_faces.subset(np.arange(len(public_test_faces)) < VALIDATION_FACES)},
                      tmp_path / "pack.npz")
    run = tmp_path / "run"
    args = ["--run-dir", str(run), "--data", str(pack), "--device", "cpu", "--batch", "32", "--threads", "1",
            "--widths", "8", "16", "32", "--blocks", "1", "1", "1", "--epochs", "500", "--budget-minutes", "0.1"]
    train(args)
    records = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert 3 <= len(records) < 500
    lrs = [r["lr"] for r in records]
    assert max(lrs) > 0.05 and lrs[-1] < 1e-3 * max(lrs), lrs  # the peak (--lr 0.1) is reached, then it anneals
    assert sum(r["seconds"] for r in records) < 0.1 * 60 * 1.5
    train(args)
    assert len((run / "train.log").read_text().splitlines()) == len(records)
    assert epochs_that_fit(60.0, 30.0, [10.0, 12.0]) == 2
    assert epochs_that_fit(60.0, 59.0, [10.0]) == 0


def test_a_gpu_asked_for_where_torch_sees_none_is_refused(tmp_path):
    import torch

    from engines.training.train import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert pick_device("auto").type == "cpu"
    with pytest.raises(SystemExit, match="torch sees no GPU"):
        pick_device("cuda")
