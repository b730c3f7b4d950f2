"""Cost of a network: FLOPs (counted by torch's own FlopCounterMode), parameters, CPU latency.

Convention: FLOPs = 2 x multiply-accumulates (a conv's multiply and add count separately), which is what
``torch.utils.flop_counter.FlopCounterMode`` reports. Papers that quote "FLOPs" often mean MACs: halve our
number to compare. Element-wise ops (BN, activations, interpolation, sigmoid) are not counted, as usual.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dbd_core.nets.registry import count_parameters, predict_logits


def _dummy_input(model: nn.Module, size: tuple[int, int], batch: int = 1) -> torch.Tensor:
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return torch.rand(batch, 3, *size, device=device)


def _run(model: nn.Module, x: torch.Tensor):
    # Discriminators take (image, map); every segmentation network takes the image alone and, at
    # inference (what FLOPs and latency describe), skips its deep-supervision side outputs.
    if getattr(model, "takes_map", False):
        return model(x, x[:, :1])
    return predict_logits(model, x)


def count_flops(model: nn.Module, size: tuple[int, int] = (320, 320)) -> int:
    """FLOPs (2 x MACs) of one forward pass of a single image of ``size`` (H, W), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        # no_grad, not inference_mode: FlopCounterMode trips over parametrized (spectral-norm) weights there.
        with torch.no_grad(), counter:
            _run(model, _dummy_input(model, size))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def latency_samples(model: nn.Module, size: tuple[int, int] = (320, 320), threads: int | None = 2,
                    warmup: int = 5, repeats: int = 20) -> list[float]:
    """Wall times (ms) of ``repeats`` eval-mode eager forwards at ``size`` under ``torch.inference_mode``,
    after ``warmup`` untimed ones."""
    return latency_by_mode(model, size, threads, warmup, repeats, modes=("eager",))["eager"]


def latency_by_mode(model: nn.Module, size: tuple[int, int] = (320, 320), threads: int | None = 2,
                    warmup: int = 5, repeats: int = 20, modes: tuple[str, ...] = ("frozen", "eager")
                    ) -> dict[str, list[float]]:
    """Wall times (ms) per forward mode: "eager" (the module as written) and "frozen" (the TorchScript
    trace the Predictor runs, ``nets.frozen``; traced during the warm-up). The modes alternate forward by
    forward, so a host that slows down mid-run slows them alike and their ratio stays honest."""
    from dbd_core.nets.frozen import FrozenForward

    unknown = set(modes) - {"eager", "frozen"}
    if unknown:
        raise ValueError(f"unknown latency modes: {sorted(unknown)}")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    try:
        x = _dummy_input(model, size)
        runs = {"eager": lambda: _run(model, x)}
        if "frozen" in modes:
            if getattr(model, "takes_map", False):
                raise ValueError("frozen latency is for segmentation networks, not discriminators")
            frozen = FrozenForward(model, trace_after=1, max_shapes=1)
            runs["frozen"] = lambda: frozen(x)
            # The trace, then TorchScript's own profiling runs (it optimises the graph on the first calls).
            warmup = max(warmup, 3)
        times: dict[str, list[float]] = {m: [] for m in modes}
        with torch.inference_mode():
            for i in range(warmup + repeats):
                for mode in modes:
                    t0 = time.perf_counter()
                    runs[mode]()
                    if i >= warmup:
                        times[mode].append((time.perf_counter() - t0) * 1000.0)
        if "frozen" in modes and not frozen.shapes:
            raise RuntimeError(f"the network could not be frozen at {size}: {frozen.eager_reasons}")
        return times
    finally:
        model.train(was_training)
        torch.set_num_threads(old_threads)


def measure_latency(model: nn.Module, size: tuple[int, int] = (320, 320), threads: int | None = 2,
                    warmup: int = 5, repeats: int = 20) -> float:
    """Median wall time (ms) of one eval-mode forward at ``size`` under ``torch.inference_mode``.

    The machine may be shared: take the median, and call it more than once if it matters."""
    return statistics.median(latency_samples(model, size, threads, warmup, repeats))


def describe_model(model: nn.Module, size: tuple[int, int] = (320, 320)) -> dict:
    """``dict(params, trainable_params, gflops_320)``; gflops at ``size`` (320x320 by default), 2 x MACs."""
    return {
        "params": count_parameters(model),
        "trainable_params": count_parameters(model, trainable_only=True),
        "gflops_320": count_flops(model, size) / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m dbd_core.nets.flops [names...]``: params, GFLOPs and CPU latency (2 threads, 320x320)."""
    import argparse

    from dbd_core.nets.registry import build_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", default=["teacher", "student", "patchgan"])
    parser.add_argument("--size", type=int, nargs=2, default=(320, 320), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (the machine may be shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.names:
        model = build_model(name)
        desc = describe_model(model, tuple(args.size))
        lat = [measure_latency(model, tuple(args.size), threads=args.threads) for _ in range(args.rounds)]
        print(f"{name:10s} params {desc['params'] / 1e6:6.3f} M  GFLOPs(2xMAC) {desc['gflops_320']:6.3f}  "
              f"latency ms (median of 20, per round) {' '.join(f'{t:7.1f}' for t in lat)}")


if __name__ == "__main__":
    main()
