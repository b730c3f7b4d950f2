"""Synthetic defocus renderer: sharp photo -> (defocused photo, blur mask), deterministic per sample.

Sample ``i`` of seed ``s`` is drawn from ``np.random.default_rng([s, i])`` alone, so it is the
same in any process, worker count or order. Scenes (see ``SCENES``):
- sharp_object: sharp object over a blurred background (the classic DBD photo);
- blurred_object: blurred object over a sharp background (the CTCUG case);
- multi_layer: 3-4 depth layers, focus on one of them, radius grows with depth distance;
- ramp: a tilted plane (gradual blur), sometimes with an object on top;
- all_sharp / all_blurred.
Label: 1 where the visible circle-of-confusion radius is > ``coc_threshold``. For a blurred
object the visible layer is the one whose *blurred* alpha is >= 0.5, so the label follows the
blurred object's own extent (for a straight edge that is the object's true outline; parts thinner
than the blur fade out and are labelled as the background they show).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from dbd_core.data import shapes
from dbd_core.data.compose import Layer, composite
from dbd_core.data.sharp_source import SharpPhotoSource  # noqa: F401  (re-exported: public API)

SCENES = ("sharp_object", "blurred_object", "multi_layer", "ramp", "all_sharp", "all_blurred")


@dataclass
class SynthConfig:
    size: int = 320
    coc_threshold: float = 1.5          # px at output scale; visible CoC radius above it = blurred
    radius_range: tuple[float, float] = (1.5, 12.0)   # blurred layers, px at output scale (log-uniform)
    sharp_radius_max: float = 0.6       # in-focus layers get a CoC radius in [0, this] (lens softness)
    gauss_mix_max: float = 0.5          # kernel = (1-m) disk + m Gaussian, m ~ U(0, this)
    scene_probs: dict = field(default_factory=lambda: {
        "sharp_object": 0.25, "blurred_object": 0.25, "multi_layer": 0.2, "ramp": 0.15,
        "all_sharp": 0.075, "all_blurred": 0.075})
    p_segmentation: float = 0.7         # use a human segmentation (when the photo has one) for shapes
    crop: str = "random"                # "random" resized crop, or "centre" (native scale, near centre)
    cache_scale: float = 1.5            # cached photo short side = cache_scale * size (never upscaled)
    p_flip: float = 0.5
    p_jitter: float = 0.8
    exposure: float = 0.25              # gain in 2**U(-e, e)
    white_balance: float = 0.08         # per-channel gain in 1 +- this
    gamma: float = 0.2                  # gamma in 2**U(-g, g)
    saturation: float = 0.25            # saturation factor in 1 +- this
    p_noise: float = 0.7
    shot_noise: tuple[float, float] = (1e-4, 5e-3)   # Poisson part: variance = a * x (log-uniform a)
    read_noise: tuple[float, float] = (5e-4, 1.2e-2)  # Gaussian sigma (log-uniform)
    p_jpeg: float = 0.6
    jpeg_quality: tuple[int, int] = (40, 95)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def at_render_size(cls, size: int, working: int = 320, **kw) -> "SynthConfig":
        """A config rendering at ``size`` px whose blur radii and label threshold are scaled by
        size / working: shrunk to the models' working size (long side 320) such a render shows the
        defocus of a ``working``-px render. Unscaled, 1.5-12 px of blur at 1024 px would shrink below a
        pixel there and no model could tell the labels apart (big photos for benchmarks)."""
        base = cls()
        k = size / float(working)
        return cls(size=size, coc_threshold=base.coc_threshold * k, sharp_radius_max=base.sharp_radius_max * k,
                   radius_range=(base.radius_range[0] * k, base.radius_range[1] * k), **kw)


def bench_render_config(size: int = 320) -> SynthConfig:
    """How ``dbd synth --preset bench`` renders: native-scale crops near the centre, and no all-sharp or
    all-blurred scene. A centre crop can still fall inside one layer (a few frames come out one-class);
    they stay, like real photos that are wholly sharp. Validation can render its held-out photos the same
    way (``val.render = "bench"``), so that what selects the kept weights sees what the benchmark sees."""
    cfg = SynthConfig(size=size, crop="centre")
    cfg.scene_probs = {k: v for k, v in cfg.scene_probs.items() if k not in ("all_sharp", "all_blurred")}
    return cfg


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _crop(img, segs, rng, cfg):
    """Random (or centred) crop, resized to size x size; only downscales when the photo allows."""
    h, w = img.shape[:2]
    n = cfg.size
    if cfg.crop == "centre":
        ch, cw = min(h, n), min(w, n)
        y0 = int(np.clip((h - ch) // 2 + rng.integers(-(h - ch) // 4 - 1, (h - ch) // 4 + 1), 0, h - ch))
        x0 = int(np.clip((w - cw) // 2 + rng.integers(-(w - cw) // 4 - 1, (w - cw) // 4 + 1), 0, w - cw))
    else:
        lo = min(n, h, w)
        side = rng.uniform(lo, min(h, w))
        aspect = np.exp(rng.uniform(-0.15, 0.15))
        ch = int(np.clip(round(side * aspect), min(n, h), h))
        cw = int(np.clip(round(side / aspect), min(n, w), w))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    box = [x0, y0, cw, ch]
    img = img[y0:y0 + ch, x0:x0 + cw]
    segs = [s[y0:y0 + ch, x0:x0 + cw] for s in segs]
    if (ch, cw) != (n, n):
        interp = cv2.INTER_AREA if ch >= n and cw >= n else cv2.INTER_CUBIC
        img = cv2.resize(img, (n, n), interpolation=interp)
        segs = [cv2.resize(s, (n, n), interpolation=cv2.INTER_NEAREST) for s in segs]
    return img, segs, box


def _jitter(img, rng, cfg, info):
    gain = 2.0 ** rng.uniform(-cfg.exposure, cfg.exposure)
    wb = 1.0 + rng.uniform(-cfg.white_balance, cfg.white_balance, 3)
    gam = 2.0 ** rng.uniform(-cfg.gamma, cfg.gamma)
    sat = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    img = np.clip(img * (gain * wb).astype(np.float32), 0, 1) ** np.float32(gam)
    grey = img.mean(axis=2, keepdims=True)
    img = np.clip(grey + (img - grey) * np.float32(sat), 0, 1)
    info["jitter"] = {"gain": round(float(gain), 4), "white_balance": [round(float(v), 4) for v in wb],
                      "gamma": round(float(gam), 4), "saturation": round(float(sat), 4)}
    return img.astype(np.float32)


def _shape(h, w, segs, rng, cfg, area=None):
    kw = {} if area is None else {"area": area}
    if segs and rng.random() < cfg.p_segmentation:
        m = shapes.segment_union_shape(segs[int(rng.integers(len(segs)))], rng, **kw)
        if m is not None:
            return m, "segmentation"
    if rng.random() < 0.5:
        return shapes.noise_shape(h, w, rng, **kw), "noise"
    return shapes.blob_shape(h, w, rng, **kw), "blob"


def _sharp_r(rng, cfg):
    return 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, cfg.sharp_radius_max))


def _blur_r(rng, cfg, lo=None):
    lo = max(cfg.radius_range[0], lo or 0.0)
    return _loguniform(rng, lo, max(lo + 1e-3, cfg.radius_range[1]))


def _scene_layers(scene, h, w, segs, rng, cfg, info):
    """Back-to-front layers for a scene type."""
    mix = float(rng.uniform(0, cfg.gauss_mix_max))
    info["gauss_mix"] = round(mix, 4)
    full = np.ones((h, w), np.float32)
    if scene == "all_sharp":
        return [Layer(full, _sharp_r(rng, cfg), mix)]
    if scene == "all_blurred":
        r = _blur_r(rng, cfg, lo=cfg.coc_threshold + 0.5)
        return [Layer(full, r, mix)]
    if scene in ("sharp_object", "blurred_object"):
        m, kind = _shape(h, w, segs, rng, cfg)
        info["shape"] = kind
        sharp, blur = _sharp_r(rng, cfg), _blur_r(rng, cfg)
        back, front = (blur, sharp) if scene == "sharp_object" else (sharp, blur)
        return [Layer(full, back, mix), Layer(m, front, mix)]
    if scene == "multi_layer":
        k = int(rng.integers(3, 5))
        # Defocus is linear in inverse depth; layers sit at increasing "diopters" back to front and
        # the focal plane is on one of them, so radii grow with distance from it on both sides.
        pos = np.sort(rng.uniform(0, 1, k))
        focus = pos[int(rng.integers(k))]
        scale = _loguniform(rng, 4.0, 2.0 * cfg.radius_range[1])
        radii = [min(float(scale * abs(p - focus)), cfg.radius_range[1]) for p in pos]
        layers = [Layer(full, radii[0], mix)]
        kinds = []
        for r in radii[1:]:
            m, kind = _shape(h, w, segs, rng, cfg, area=(0.08, 0.35))
            kinds.append(kind)
            layers.append(Layer(m, r, mix))
        info["shape"] = kinds
        return layers
    if scene == "ramp":
        d = shapes.depth_ramp(h, w, rng)
        focus = float(rng.uniform(-0.2, 0.6))
        rmax = _blur_r(rng, cfg, lo=3.0)
        rmap = (rmax * np.abs(d - focus) / max(abs(1 - focus), abs(focus), 1e-3)).astype(np.float32)
        info["ramp_focus"] = round(focus, 4)
        layers = [Layer(rmap, rmap, mix)]
        layers[0].alpha = full
        if rng.random() < 0.5:  # an object standing in the scene, in focus or not
            m, kind = _shape(h, w, segs, rng, cfg, area=(0.08, 0.35))
            info["shape"] = kind
            layers.append(Layer(m, _sharp_r(rng, cfg) if rng.random() < 0.6 else _blur_r(rng, cfg), mix))
        return layers
    raise ValueError(f"unknown scene {scene!r}")


def _noise_and_jpeg(img, rng, cfg, info):
    if rng.random() < cfg.p_noise:
        a = _loguniform(rng, *cfg.shot_noise)
        b = _loguniform(rng, *cfg.read_noise)
        sigma = np.sqrt(a * img + b * b)
        img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
        info["noise"] = {"shot": round(a, 6), "read_sigma": round(b, 6)}
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
            info["jpeg_quality"] = q
    return out


def pick_photo(n_photos: int, index: int, seed: int) -> int:
    """Each block of n consecutive indices visits every photo once, in a seed-dependent order."""
    perm = np.random.default_rng([seed, index // n_photos, 7]).permutation(n_photos)
    return int(perm[index % n_photos])


def pick_scene(rng, cfg) -> str:
    names = [s for s in SCENES if cfg.scene_probs.get(s, 0) > 0]
    p = np.array([cfg.scene_probs[s] for s in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def render_sample(source: SharpPhotoSource, index: int, seed: int, cfg: SynthConfig | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """-> (image HxWx3 uint8 RGB, mask HxW uint8 {0,1} with 1 = blurred, info dict (JSON-able))."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng([int(seed), int(index)])
    pi = pick_photo(len(source), index, seed)
    photo, segs = source.load(pi, int(round(cfg.size * cfg.cache_scale)))
    info: dict = {"source": source.relative_name(pi), "photo_index": pi, "seed": int(seed), "index": int(index)}
    img, segs, box = _crop(photo, segs, rng, cfg)
    info["crop"] = box
    if rng.random() < cfg.p_flip:
        img, segs = img[:, ::-1], [s[:, ::-1] for s in segs]
        info["flip"] = True
    img = img.astype(np.float32) / 255.0
    if rng.random() < cfg.p_jitter:
        img = _jitter(img, rng, cfg, info)
    scene = pick_scene(rng, cfg)
    info["scene"] = scene
    layers = _scene_layers(scene, cfg.size, cfg.size, segs, rng, cfg, info)
    info["radii"] = [round(float(ly.radius), 3) if np.ndim(ly.radius) == 0
                     else [round(float(np.min(ly.radius)), 3), round(float(np.max(ly.radius)), 3)]
                     for ly in layers]
    rendered, coc = composite(np.ascontiguousarray(img), layers)
    mask = (coc > cfg.coc_threshold).astype(np.uint8)
    image = _noise_and_jpeg(rendered, rng, cfg, info)
    info["blurred_fraction"] = round(float(mask.mean()), 4)
    return image, mask, info


class SyntheticDataset:
    """Map-style torch dataset: index -> the deterministic sample ``render_sample(source, i, seed)``
    as the item dict of docs/ARCHITECTURE.md. ``__getitem__`` is safe in any DataLoader worker."""

    def __init__(self, source: SharpPhotoSource, length: int, seed: int = 0, cfg: SynthConfig | None = None):
        self.source, self.length, self.seed = source, int(length), int(seed)
        self.cfg = cfg or SynthConfig()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        import torch

        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(i)
        if torch.utils.data.get_worker_info() is not None:
            cv2.setNumThreads(1)  # workers are the parallelism; OpenCV threads would oversubscribe
        image, mask, _ = render_sample(self.source, i, self.seed, self.cfg)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "mask": torch.from_numpy(mask[None].astype(np.float32)),
            "has_mask": True,
            "name": f"synth_s{self.seed}_{i:06d}",
        }
