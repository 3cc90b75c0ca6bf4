"""How close PyTorch eager already runs vgg16 to this CPU's float32 ceiling (issue 15's vgg16 row).

The issue asks for a forward pass at least 2x PyTorch eager, with features within 1e-4 of eager's.
vgg16 spends 99% of its arithmetic in dense 3x3 convolutions; an engine can only beat eager there by
doing the same float32 arithmetic faster, so eager's rate against the machine's best float32 rate
bounds what any float32 engine can gain. This script measures, interleaved in one run:

* eager (oneDNN, channels-last) on vgg16's heaviest convolution shapes at batch 16, in GFLOP/s;
* the best float32 rate the machine reaches: a large square sgemm (MKL), in GFLOP/s;
* the exact integer route: int8 x int8 -> int32 GEMM (``torch._int_mm``, AMX where present) on the
  same convolutions written as GEMMs, and the im2col (``unfold``) they need. Splitting each float32
  operand into two int8 digits keeps the products exact but needs 3-4 such GEMMs per convolution;
* NNPACK, torch's other convolution library (AVX2; its automatic choice includes Winograd and FFT
  3x3 convolutions, which need fewer multiplications), on the same convolutions.

    PYTHONPATH=. nice .venv/bin/python bench/vgg16_bound_bench.py --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

# (channels, side) of vgg16's heaviest 3x3 convolutions at 224 px input, batch 16.
HEAVY_CONVS = ((128, 112), (256, 56), (512, 28))
BATCH = 16


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    sgemm = 2 * 4096**3 / median_seconds(lambda: a @ b, args.repeats) / 1e9
    print(f"sgemm 4096^3 (MKL), the machine's float32 rate: {sgemm:.0f} GFLOP/s")
    # is_available() also initialises NNPACK; without it every NNPACK call fails.
    print(f"NNPACK available to torch: {torch.backends.nnpack.is_available()}")
    print("conv (C, side) | eager GFLOP/s | of sgemm | eager ms | NNPACK ms (maxrel) | int8 GEMM ms | "
          "3 int8 GEMMs + im2col ms | vs eager")
    with torch.inference_mode():
        for channels, side in HEAVY_CONVS:
            flops = 2 * BATCH * side * side * channels * channels * 9
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(memory_format=torch.channels_last)
            x = torch.randn(BATCH, channels, side, side).contiguous(memory_format=torch.channels_last)
            eager = median_seconds(lambda: conv(x), args.repeats)
            plain = x.contiguous()
            nnpack = median_seconds(lambda: torch._nnpack_spatial_convolution(plain, conv.weight, conv.bias, [1, 1], [1, 1]),
                                    args.repeats)
            reference = conv(x)
            maxrel = float((torch._nnpack_spatial_convolution(plain, conv.weight, conv.bias, [1, 1], [1, 1]) - reference).abs().max()
                           / reference.abs().max())
            rows, depth = BATCH * side * side, channels * 9
            a8 = torch.randint(-127, 127, (rows, depth), dtype=torch.int8)
            b8 = torch.randint(-127, 127, (depth, channels), dtype=torch.int8)
            int8 = median_seconds(lambda: torch._int_mm(a8, b8), args.repeats)
            im2col = median_seconds(lambda: torch.nn.functional.unfold(plain, 3, padding=1), max(1, args.repeats // 2))
            exact = 3 * int8 + im2col
            print(f"({channels}, {side}) | {flops / eager / 1e9:.0f} | {flops / eager / 1e9 / sgemm:.0%} | {eager * 1e3:.0f} | "
                  f"{nnpack * 1e3:.0f} ({maxrel:.1e}) | {int8 * 1e3:.0f} | {exact * 1e3:.0f} | x{eager / exact:.2f}")


if __name__ == "__main__":
    main()
