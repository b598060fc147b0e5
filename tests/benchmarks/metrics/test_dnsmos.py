import numpy as np
import pytest
import torch

from benchmarks.metrics.dnsmos import POLYFIT, SAMPLE_RATE, WINDOW, Dnsmos


def linear_onnx(path, rng, window=WINDOW):
    """An ONNX model with DNSMOS P.835's interface (input_1: [1, 144160] float -> [1, 3] raw SIG/BAK/OVRL) and random
    linear weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (rng.normal(size=(window, 3)) * 0.01).astype(np.float32)
    b = np.array([3.0, 3.5, 2.8], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input_1", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["Identity:0"])],
        "dnsmos_like", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", window])],
        [helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return w.astype(np.float64), b.astype(np.float64)


def by_hand(wav: np.ndarray, w, b) -> dict[str, float]:
    """DNS-Challenge's procedure written out: double until 9.01 s, 1 s hops, polynomial, mean."""
    while len(wav) < WINDOW:
        wav = np.concatenate([wav, wav])
    hops = int(np.floor(len(wav) / SAMPLE_RATE) - 9.01) + 1
    segs = [wav[k * SAMPLE_RATE:k * SAMPLE_RATE + WINDOW] for k in range(hops)]
    raw = np.stack([s.astype(np.float32).astype(np.float64) @ w + b for s in segs if len(s) == WINDOW])
    return {n: float(np.polyval(POLYFIT[n], raw[:, k]).mean()) for k, n in enumerate(("sig", "bak", "ovrl"))}


@pytest.mark.parametrize("seconds", [2.3, 9.01, 12.5])  # doubled; exactly one window; 3 windows
def test_windows_polynomials_and_mean_follow_dns_challenge(tmp_path, seconds):
    rng = np.random.default_rng(0)
    w, b = linear_onnx(tmp_path / "sig_bak_ovr.onnx", rng)
    wav = rng.normal(size=int(seconds * SAMPLE_RATE)) * 0.1
    scores = Dnsmos(tmp_path / "sig_bak_ovr.onnx").score(torch.from_numpy(wav).float()[None], SAMPLE_RATE)
    expected = by_hand(wav.astype(np.float32).astype(np.float64), w, b)
    assert scores == pytest.approx(expected, rel=1e-4)


def test_other_rates_are_resampled_and_bad_models_refused(tmp_path):
    rng = np.random.default_rng(1)
    linear_onnx(tmp_path / "m.onnx", rng)
    model = Dnsmos(tmp_path / "m.onnx")
    wav = torch.from_numpy(rng.normal(size=(2, 24000 * 3)) * 0.1).float()  # stereo, 24 kHz
    assert set(model.score(wav, 24000)) == {"sig", "bak", "ovrl"}
    with pytest.raises(FileNotFoundError, match="sig_bak_ovr.onnx"):
        Dnsmos(tmp_path / "missing.onnx")
    linear_onnx(tmp_path / "short.onnx", rng, window=1000)
    with pytest.raises(ValueError, match="not DNSMOS P.835"):
        Dnsmos(tmp_path / "short.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        Dnsmos(tmp_path / "junk.onnx")
