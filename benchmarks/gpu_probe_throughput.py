"""GPU throughput of backbone activation extraction for every registered model architecture.

Standalone: it needs no model weights (the GPU machine does not have the packaged GGUF files).
Each registered model's architecture is rebuilt from a hard-coded config with random weights, in
bfloat16 on CUDA, and the same forward path as :class:`probes.activations.ActivationExtractor`
(backbone only, early stop after the deepest probed layer, last-token pooling) is timed on
synthetic token ids at a few batch sizes. Prints one JSON table on stdout; finishes in under 4
minutes on one H100 (a global deadline skips what is left, and says so).

    python benchmarks/gpu_probe_throughput.py                 # on the GPU machine
    python benchmarks/gpu_probe_throughput.py --tiny          # CPU smoke test with tiny configs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Architectures of the registered models (read from their packaged configs), without weights.
CONFIGS: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        model_type="llama",
        num_hidden_layers=30,
        hidden_size=576,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        head_dim=64,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        max_position_embeddings=8192,
    ),
    "qwen2.5-coder-1.5b": dict(
        model_type="qwen2",
        num_hidden_layers=28,
        hidden_size=1536,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
        max_position_embeddings=32768,
    ),
    "qwen2.5-coder-0.5b": dict(
        model_type="qwen2",
        num_hidden_layers=24,
        hidden_size=896,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
        max_position_embeddings=32768,
    ),
    "gemma3-270m": dict(
        model_type="gemma3_text",
        num_hidden_layers=18,
        hidden_size=640,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        intermediate_size=2048,
        vocab_size=262144,
        sliding_window=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        max_position_embeddings=32768,
    ),
    "minilm-l6": dict(
        model_type="bert",
        num_hidden_layers=6,
        hidden_size=384,
        num_attention_heads=12,
        intermediate_size=1536,
        vocab_size=30522,
        max_position_embeddings=512,
    ),
}
#: Probed layers (as in the registry's defaults): the forward pass stops after the deepest one.
LAYERS: dict[str, list[int]] = {
    "smollm2-135m": list(range(8, 24)),
    "qwen2.5-coder-1.5b": list(range(12, 22)),
    "qwen2.5-coder-0.5b": list(range(8, 20)),
    "gemma3-270m": list(range(4, 14)),
    "minilm-l6": [2, 3, 4, 5, 6],
}


def tiny(cfg: dict[str, Any]) -> dict[str, Any]:
    """A scaled-down copy of a config (for the CPU smoke test)."""
    out = dict(
        cfg,
        num_hidden_layers=3,
        hidden_size=64,
        intermediate_size=128,
        vocab_size=512,
        num_attention_heads=4,
        num_key_value_heads=min(cfg.get("num_key_value_heads", 4), 2),
    )
    if "head_dim" in cfg:
        out["head_dim"] = 16
    return out


def build(cfg: dict[str, Any], device: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModel

    kwargs = {k: v for k, v in cfg.items() if k != "model_type"}
    config = AutoConfig.for_model(cfg["model_type"], **kwargs)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModel.from_config(config, dtype=dtype)
    return model.eval()


def measure(
    name: str,
    cfg: dict[str, Any],
    layers: list[int],
    batch_sizes: list[int],
    seq_len: int,
    device: str,
    dtype: Any,
    min_seconds: float,
    deadline: float,
) -> list[dict[str, Any]]:
    import torch

    from probes.activations import ActivationExtractor

    model = build(cfg, device, dtype)
    n_layers = cfg["num_hidden_layers"]
    probed = tuple(sorted({min(layer, n_layers) for layer in layers}))
    tok = SimpleNamespace(pad_token="<pad>", pad_token_id=0, eos_token="</s>", padding_side="right")
    ex = ActivationExtractor(model, tok, model_key=name, max_length=max(seq_len, 8), progress=False)
    rows = []
    oom = torch.cuda.OutOfMemoryError if device.startswith("cuda") else MemoryError
    gen = torch.Generator(device="cpu").manual_seed(0)
    for bs in batch_sizes:
        if time.perf_counter() > deadline:
            rows.append({"model": name, "batch_size": bs, "skipped": "global deadline"})
            continue
        ids = torch.randint(5, cfg["vocab_size"], (bs, seq_len), generator=gen).to(device)
        mask = torch.ones_like(ids)
        last = mask.sum(1) - 1
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

        def step(ids: Any = ids, mask: Any = mask, last: Any = last) -> Any:
            with torch.inference_mode():
                h = torch.stack(ex._forward(ids, mask, probed), dim=1)
                return h[torch.arange(ids.shape[0], device=ids.device), :, last].float().cpu()

        try:
            step()  # warm-up (kernels, allocator)
            sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
            sync()
            t0, iters = time.perf_counter(), 0
            while True:
                step()
                iters += 1
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed >= min_seconds or iters >= 50:
                    break
        except oom:
            rows.append({"model": name, "batch_size": bs, "skipped": "out of memory"})
            torch.cuda.empty_cache()
            continue
        per_batch = elapsed / iters
        row = {
            "model": name,
            "batch_size": bs,
            "seq_len": seq_len,
            "iterations": iters,
            "ms_per_batch": round(per_batch * 1e3, 3),
            "texts_per_second": round(bs / per_batch, 1),
            "tokens_per_second": round(bs * seq_len / per_batch),
            "layers": [probed[0], probed[-1]],
        }
        if device.startswith("cuda"):
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rows.append(row)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="Backbone extraction throughput with random weights."
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny configs, small batches (CPU smoke test)"
    )
    parser.add_argument("--models", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None)
    parser.add_argument(
        "--seq-len", type=int, default=None, help="tokens per text (default 256; tiny 16)"
    )
    parser.add_argument("--budget-s", type=float, default=200.0, help="global deadline in seconds")
    args = parser.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    batch_sizes = args.batch_sizes or ([2, 4] if args.tiny else [16, 64, 256])
    seq_len = args.seq_len or (16 if args.tiny else 256)
    min_seconds = 0.05 if args.tiny else 1.5
    deadline = time.perf_counter() + args.budget_s
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for name in args.models:
        cfg = tiny(CONFIGS[name]) if args.tiny else CONFIGS[name]
        t0 = time.perf_counter()
        rows = measure(
            name, cfg, LAYERS[name], batch_sizes, seq_len, device, dtype, min_seconds, deadline
        )
        for r in rows:
            r["model_seconds_total"] = round(time.perf_counter() - t0, 1)
        results.extend(rows)
    report = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "weights": "random (architecture only)",
        "tiny": args.tiny,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
