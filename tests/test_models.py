"""Models and checkpoints: the official fixtures, both checkpoint layouts, strict loading, safe loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, SHARED, fixture_cases, needs_shared
from PIL import Image

from liif_cli.models import (
    CheckpointError,
    Normalization,
    build_liif,
    load_checkpoint,
    reference_upscale,
    save_official,
)

CASES = fixture_cases()


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def test_official_checkpoint_loads_strictly_with_official_normalization(official_weights):
    loaded = load_checkpoint(official_weights)
    assert loaded.encoder == "edsr-baseline"
    assert loaded.source_format == "official"
    assert loaded.normalization.sub == (0.5, 0.5, 0.5) and loaded.normalization.div == (0.5, 0.5, 0.5)
    assert sum(p.numel() for p in loaded.net.encoder.parameters()) == 1_220_416  # EDSR-baseline, no tail
    assert sum(p.numel() for p in loaded.net.imnet.parameters()) == 346_883  # 580-256-256-256-256-3


@needs_shared
def test_oracle_reproduces_the_official_fixture():
    """The transcription itself is checked once, on the smallest case (it is slow by design)."""
    case = next(c for c in CASES if c["name"] == "woman_down_40w_70h")
    loaded = load_checkpoint(OFFICIAL)
    x = torch.from_numpy(read_rgb(SHARED / case["input"])).permute(2, 0, 1)
    w, h = case["output_size_wh"]
    norm = loaded.normalization
    out = reference_upscale(loaded.net, x, (h, w), norm.sub, norm.div).numpy()
    assert np.abs(out - np.load(SHARED / case["file"])).max() <= 1e-6  # measured 3.9e-7


def test_mmagic_layout_loads_and_uses_the_mmagic_edsr_normalization(checkpoints):
    official = load_checkpoint(checkpoints.edsr)
    raw = torch.load(checkpoints.mmagic_edsr, map_location="cpu", weights_only=True)["state_dict"]
    assert all(k.startswith("generator.") and ".encoder." not in k for k in raw)

    loaded = load_checkpoint(checkpoints.mmagic_edsr)
    assert loaded.source_format == "mmagic" and loaded.encoder == "edsr-baseline"
    mean = (0.4488, 0.4371, 0.4040)
    assert loaded.normalization.sub == mean and loaded.normalization.div == (1.0, 1.0, 1.0)

    x = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    got = reference_upscale(loaded.net, x, (50, 37), loaded.normalization.sub, loaded.normalization.div)
    # The official network, fed by hand with mmagic's normalization: x - mean in, pred + mean out.
    m = torch.tensor(mean).view(3, 1, 1)
    with torch.no_grad():
        feat = official.net.encode((x - m).unsqueeze(0))
        from liif_cli.models import make_cell, make_coord

        coord = make_coord((50, 37)).unsqueeze(0)
        pred = official.net.query_rgb(feat, coord, make_cell(coord, (50, 37)))[0]
    want = (pred + m.view(1, 3)).clamp(0, 1).view(50, 37, 3)
    assert torch.equal(got, want)


def test_session_checkpoints_hold_the_same_edsr_weights_in_every_layout(checkpoints):
    """conftest's official, mmagic and .safetensors EDSR-baseline files load to one network (the normalization
    each layout implies), and that network gives a picture, not a flat grey."""
    official = load_checkpoint(checkpoints.edsr)
    for path, fmt, norm in (
        (checkpoints.mmagic_edsr, "mmagic", "div2k-mean"),
        (checkpoints.safetensors, "safetensors", "half"),
    ):
        other = load_checkpoint(path)
        assert (other.encoder, other.source_format, other.normalization) == (
            "edsr-baseline",
            fmt,
            Normalization.named(norm),
        )
        a, b = official.net.state_dict(), other.net.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(2))
    out = reference_upscale(official.net, x, (24, 20), (0.5,) * 3, (0.5,) * 3)
    assert out.std() > 0.02 and 0 < out.min() and out.max() < 1


def test_mmagic_rdn_layout_gives_the_floats_of_the_official_layout(checkpoints):
    """mmagic's RDN keys (`sfe1`, `rdbs.{i}.layers.{j}.conv`, `rdbs.{i}.lff`, `gff`) land on the official ones:
    the same random weights saved both ways load to the same tensors, normalization and output floats."""
    official, mmagic = load_checkpoint(checkpoints.rdn), load_checkpoint(checkpoints.mmagic_rdn)
    raw = torch.load(checkpoints.mmagic_rdn, map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("generator.rdbs.15.layers.7.conv.") for k in raw) and "generator.gff.1.weight" in raw
    assert (mmagic.encoder, mmagic.source_format) == ("rdn", "mmagic")
    assert mmagic.normalization == official.normalization == Normalization.named("half")
    a, b = official.net.state_dict(), mmagic.net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(3, 7, 6, generator=torch.Generator().manual_seed(4))
    norm = official.normalization
    got = reference_upscale(mmagic.net, x, (15, 11), norm.sub, norm.div)
    assert torch.equal(got, reference_upscale(official.net, x, (15, 11), norm.sub, norm.div))
    assert got.std() > 0.02


def test_rdn_with_random_weights_round_trips_through_the_official_format(tmp_path):
    torch.manual_seed(0)
    net = build_liif("rdn")
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(22.3e6, rel=0.002)  # NOTES: 22.3 M
    path = tmp_path / "rdn.pth"
    save_official(net, "rdn", path, optimizer={"state": {}}, epoch=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["model"]["args"]["encoder_spec"]["name"] == "rdn" and raw["epoch"] == 3
    loaded = load_checkpoint(path)
    assert loaded.encoder == "rdn" and loaded.source_format == "official"
    x = torch.rand(3, 9, 11)
    out = reference_upscale(loaded.net, x, (20, 17), (0.5,) * 3, (0.5,) * 3)
    assert out.shape == (20, 17, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
def test_a_seeded_model_is_initialised_in_the_official_order(encoder):
    """As the official `LIIF.__init__`: the encoder draws its random weights first, then the decoder MLP, so a
    seeded `liif train` from scratch starts from the same weights as the official code (and earlier releases)."""
    from liif_cli.encoders import ENCODERS
    from liif_cli.models.mlp import MLP

    torch.manual_seed(0)
    net = build_liif(encoder)
    torch.manual_seed(0)
    encoder_first = ENCODERS[encoder].build()
    imnet_second = MLP(in_dim=64 * 9 + 4)
    for got, want in ((net.encoder, encoder_first), (net.imnet, imnet_second)):
        want_sd = want.state_dict()
        assert all(torch.equal(t, want_sd[k]) for k, t in got.state_dict().items())


def test_missing_or_extra_keys_are_refused(tmp_path):
    net = build_liif("edsr-baseline")
    sd = net.state_dict()
    del sd["imnet.layers.8.bias"]
    path = tmp_path / "broken.pth"
    torch.save({"model": {"name": "liif", "args": {}, "sd": sd}}, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


class Payload:
    """Anything that needs a class to unpickle is refused (weights_only=True)."""


def test_checkpoints_that_need_code_to_unpickle_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(CheckpointError, match="refused: loading this checkpoint would run code stored in it"):
        load_checkpoint(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)


def test_recorded_data_norm_wins_over_the_format_default(tmp_path):
    """`liif train` fine-tuning an mmagic EDSR saves official layout plus `data_norm` (x - mean)."""
    net = build_liif("edsr-baseline")
    path = tmp_path / "finetuned.pth"
    save_official(net, "edsr-baseline", path)
    obj = torch.load(path, weights_only=True)
    mean = [0.4488, 0.4371, 0.4040]
    obj["data_norm"] = {"inp": {"sub": mean, "div": [1.0]}, "gt": {"sub": mean, "div": [1.0]}}
    torch.save(obj, path)
    loaded = load_checkpoint(path)
    assert loaded.normalization.sub == tuple(mean) and loaded.normalization.div == (1.0, 1.0, 1.0)
    assert load_checkpoint(path, normalization="half").normalization.sub == (0.5, 0.5, 0.5)


def test_safetensors_exports_load_like_any_checkpoint(tmp_path):
    pytest.importorskip("safetensors")
    from liif_cli.train import save_safetensors

    net = build_liif("edsr-baseline")
    norm = Normalization.named("div2k-mean")
    out = tmp_path / "mine.safetensors"
    save_safetensors(net, "edsr-baseline", norm, out, {"source": "test"})
    loaded = load_checkpoint(out)
    assert loaded.source_format == "safetensors" and loaded.normalization == norm
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "bad.safetensors")
