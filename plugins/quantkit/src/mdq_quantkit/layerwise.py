"""Block-by-block quantization: find the transformer blocks and their linear layers (optimum's
discovery), capture each block's inputs, quantize it, and feed the next block the outputs of
the already-quantized one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .config import QuantConfig
from .qlinear import QuantLinear
from .quant import check_finite


class _Stop(Exception):
    pass


def blocks_of(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (dotted name, ModuleList) of the model's transformer blocks."""
    from optimum.gptq.utils import get_block_name_with_pattern

    try:
        name = get_block_name_with_pattern(model)
    except ValueError:
        raise ValueError("no transformer blocks found in this model (expected e.g. model.layers or "
                         "transformer.h); it has nothing mdq can quantize block by block") from None
    return name, model.get_submodule(name)


def linears_of(block: nn.Module) -> dict[str, nn.Module]:
    """Return the block's linear layers (nn.Linear and transformers' Conv1D) by name, in forward order."""
    from optimum.gptq.utils import get_layers
    from transformers.pytorch_utils import Conv1D

    return get_layers(block, layers=[Conv1D, nn.Linear])


def shape_of(layer: nn.Module) -> tuple[int, int]:
    """Return (out_features, in_features) of a layer without copying its weight (Conv1D stores it transposed)."""
    out_f, in_f = layer.weight.shape
    return (in_f, out_f) if layer.__class__.__name__ == "Conv1D" else (out_f, in_f)


def weight_of(layer: nn.Module) -> Tensor:
    """Return a layer's weight as (out, in) float32 (Conv1D stores it transposed)."""
    return layer.weight.detach().float().t() if layer.__class__.__name__ == "Conv1D" else layer.weight.detach().float()


def set_weight(layer: nn.Module, w: Tensor) -> None:
    """Give a layer a new (out, in) weight in its own dtype, without writing into the storage it had."""
    # rebinding rather than copy_: the old tensor may be shared with the caller or memory-mapped
    layer.weight.data = (w.t() if layer.__class__.__name__ == "Conv1D" else w).to(layer.weight.dtype).contiguous()


def check_model(model: nn.Module) -> None:
    """Refuse a model with no quantizable linear layer or with NaN / Inf weights, before any work."""
    _, blocks = blocks_of(model)
    names = [n for i, b in enumerate(blocks) for n in linears_of(b)]
    if not names:
        raise ValueError("the model's blocks contain no linear layers to quantize")
    stream = getattr(model, "mdq_stream", None)
    if stream is not None:
        stream.check_finite()  # the blocks are not loaded yet: read each tensor once from the file
        return
    for i, b in enumerate(blocks):
        for n, lin in linears_of(b).items():
            check_finite(lin.weight, f"block {i} {n}")


def replace(block: nn.Module, name: str, q: QuantLinear) -> None:
    """Put a QuantLinear where the named layer was."""
    parent, _, leaf = name.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, leaf, q)


@torch.no_grad()
def capture(model: nn.Module, samples: Sequence[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
    """Return the first block's input hidden states for each sample and its keyword arguments."""
    _, blocks = blocks_of(model)
    inputs: list[Tensor] = []
    kwargs: dict[str, Any] = {}

    def hook(_mod: nn.Module, args: tuple, kw: dict) -> None:
        inputs.append(args[0] if args else kw.pop("hidden_states"))
        kwargs.update({k: v for k, v in kw.items() if k != "hidden_states"})
        raise _Stop

    h = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for s in samples:
            try:
                model(s, use_cache=False)
            except _Stop:
                pass
    finally:
        h.remove()
    return inputs, kwargs


def run_block(block: nn.Module, x: Tensor, kwargs: dict[str, Any]) -> Tensor:
    """Run one block and return its hidden-state output."""
    out = block(x, **kwargs)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def layer_inputs(block: nn.Module, names: Sequence[str], inputs: Sequence[Tensor],
                 kwargs: dict[str, Any], fn: Callable[[str, Tensor], None], *, stop: bool = False) -> None:
    """Run the block on every input and call fn(layer name, layer input (tokens, in)) as each layer is reached.

    With `stop`, each forward is cut short once every named layer has been reached: the rest of
    the block is not needed to collect their inputs.
    """
    lin = linears_of(block)
    pending: set[str] = set()

    def hook(_m: nn.Module, a: tuple, n: str) -> None:
        fn(n, a[0].reshape(-1, a[0].shape[-1]).float())
        pending.discard(n)
        if stop and not pending:
            raise _Stop

    hooks = [lin[n].register_forward_pre_hook(lambda m, a, n=n: hook(m, a, n)) for n in names]
    try:
        for x in inputs:
            pending.update(names)
            try:
                run_block(block, x, kwargs)
            except _Stop:
                pass
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def sequential_groups(block: nn.Module, x: Tensor, kwargs: dict[str, Any]) -> list[list[str]]:
    """Return the block's linear layers grouped by shared input, in forward order (e.g. [q,k,v], [o], [gate,up], [down]).

    Found by running the block once on x (one sample) and comparing the tensors each layer
    receives, so it needs no per-architecture table. Layers x did not reach come last, one per group.
    """
    seen: list[tuple[str, Tensor]] = []
    layer_inputs(block, list(linears_of(block)), [x[:1]], kwargs, lambda n, t: seen.append((n, t)))
    groups: list[list[str]] = []
    last: Tensor | None = None
    for n, t in seen:
        if last is not None and t.shape == last.shape and torch.equal(t, last):
            groups[-1].append(n)
        else:
            groups.append([n])
        last = t
    reached = {n for g in groups for n in g}
    # a layer this sample did not reach (a branch it skipped) still gets a group, last, so a
    # backend sees it and can say it got no input rather than leave it unquantized
    return groups + [[n] for n in linears_of(block) if n not in reached]


GroupFn = Callable[[int, Tensor, int], None]


def gram(x: Tensor, width: int = 256) -> Tensor:
    """Return x^T x (in, in) for x (tokens, in), computing only the blocks on and above the diagonal."""
    n = x.shape[1]
    k = max(1, -(-n // width))
    if k == 1:
        return x.t() @ x
    cuts = [i * n // k for i in range(k + 1)]
    parts = [x[:, cuts[i]:cuts[i + 1]] for i in range(k)]
    out = torch.empty(n, n, dtype=x.dtype, device=x.device)
    for i in range(k):
        for j in range(i, k):
            blk = parts[i].t() @ parts[j]
            out[cuts[i]:cuts[i + 1], cuts[j]:cuts[j + 1]] = blk
            if i != j:  # symmetric: the block below the diagonal is this one transposed
                out[cuts[j]:cuts[j + 1], cuts[i]:cuts[i + 1]] = blk.t()
    return out


def calibration_dtype(name: str, device: str = "cpu") -> torch.dtype | None:
    """Resolve a calibration dtype name (float32, bfloat16, auto) to the autocast dtype of the pass (None: float32).

    auto is bfloat16 where the hardware multiplies it natively (any CUDA GPU; a CPU with AVX512-BF16
    or AMX, where a one-off timing of a SmolLM2-sized matmul ran 4.9x faster than in float32),
    else float32.
    """
    if name == "float32":
        return None
    if name == "bfloat16":
        return torch.bfloat16
    if name != "auto":
        raise ValueError(f"calibration dtype must be float32, bfloat16 or auto, got {name!r}")
    if device != "cpu":
        return torch.bfloat16
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.bfloat16 if native else None


def batchable(inputs: Sequence[Tensor], kwargs: dict[str, Any]) -> bool:
    """Return whether the inputs can run as batches: one shape, and no keyword tensor tied to a batch of one.

    A keyword tensor whose first dimension is 1 (position ids, cos/sin tables, a causal mask)
    broadcasts over a batch; one with another first dimension (e.g. ALiBi biases per batch x
    head, or a cache position per token) might be tied to the batch size, so such blocks keep
    one input per thread.
    """
    if len(inputs) < 2 or any(x.shape != inputs[0].shape for x in inputs):
        return False

    def ok(v: Any) -> bool:
        if isinstance(v, Tensor):
            return v.dim() == 0 or v.shape[0] == 1
        if isinstance(v, (tuple, list)):
            return all(ok(e) for e in v)
        if isinstance(v, dict):
            return all(ok(e) for e in v.values())
        return True

    return ok(kwargs)


# four batches per core: the batches computing at once hold their MLP temporaries, so smaller ones
# lower the peak (SmolLM2, 32 windows: 80 MB less than one batch per core), at the same speed
BATCHES_PER_CORE = 4


def split_batches(n: int, parts: int) -> list[range]:
    """Return `parts` contiguous, nearly equal index ranges covering range(n) (none empty)."""
    parts = max(1, min(parts, n))
    cuts = [i * n // parts for i in range(parts + 1)]
    return [range(cuts[i], cuts[i + 1]) for i in range(parts)]


def joined(xs: Sequence[Tensor]) -> Tensor:
    """Return the inputs concatenated along dim 0, without a copy when they are consecutive parts of one tensor.

    The outputs of a batched pass are split views of one batch output; the next block batches
    them the same way, so taking their base back saves a copy of every activation.
    """
    base = xs[0]._base
    if base is not None and base.is_contiguous() and base.shape[0] == sum(x.shape[0] for x in xs):
        at = base.data_ptr()
        for x in xs:
            if x._base is not base or not x.is_contiguous() or x.data_ptr() != at or x.shape[1:] != base.shape[1:]:
                break
            at += x.numel() * x.element_size()
        else:
            return base
    return xs[0] if len(xs) == 1 else torch.cat(list(xs))


@torch.no_grad()
def inline_pass(block: nn.Module, groups: Sequence[Sequence[str]], inputs: Sequence[Tensor], kwargs: dict[str, Any],
                on_group: GroupFn, *, batch: bool = True, autocast: torch.dtype | None = None) -> list[Tensor]:
    """Run the block once over every input, stopping all of them at each group to quantize it; return the outputs.

    With `batch` (and inputs `batchable`), the inputs are concatenated into `BATCHES_PER_CORE`
    batches per core, each run in its own thread, one per core computing at once; otherwise each
    input runs in its own thread, at most cores + 1 of them computing at once. Each thread has
    one intra-op thread, so the inputs, not the matmuls, share the cores. Batches hold the same
    activations at a group's barrier as single inputs but far fewer threads' overheads (in a
    profile of one SmolLM2-135M block on 32 windows: 250 MB less at the last barrier, and the
    pass 1.4x faster). A block must compute each row of a batch as it would alone (every
    transformers block does); one that branches on a whole input's values needs batch=False.
    With `autocast` (e.g. torch.bfloat16) the block runs under torch's autocast: matmuls in that
    dtype, weights and the residual stream kept in float32. Each input's x^T x is taken in bfloat16
    under bfloat16 autocast (the layer multiplies its input in bfloat16 anyway; the matmul
    accumulates in float32 and rounds its result; ~4x faster than float32 on a CPU with AVX512-BF16 in
    a one-off probe of 2,048 tokens at widths 576 and 1536),
    else in float32; the sums across inputs are float64. When a group's first layer is
    reached, the thread adds x^T x of its input to the group's sum and waits; once every input
    has arrived, `on_group(index, sum x^T x, tokens)` runs on the calling thread and must write
    the group's quantized weights into its layers, and the inputs go on through them. So each group sees inputs that already went
    through the block's quantized earlier groups (true-sequential) in one forward per block,
    instead of one partial forward per group plus one to propagate. An input that never reaches
    a group (a layer it skips) arrives empty; one that reaches a layer after its group was
    quantized without it (layers run in an order that differs by input) is an error. A failure
    anywhere stops every thread and is raised.
    """
    leads = {g[0]: i for i, g in enumerate(groups)}
    lin = linears_of(block)
    singles = list(inputs)
    spans = [range(i, i + 1) for i in range(len(singles))]
    batched = batch and batchable(singles, kwargs)
    if batched:
        spans = split_batches(len(singles), BATCHES_PER_CORE * torch.get_num_threads())
        inputs = [joined([singles[i] for i in r]) for r in spans]
    n = len(inputs)
    gate = threading.Barrier(n + 1)
    lock = threading.Lock()
    sums: list[Tensor | None] = [None] * len(groups)
    tokens = [0] * len(groups)
    outputs: list[Tensor | None] = [None] * n
    errors: list[BaseException] = []
    local = threading.local()
    # single inputs: one more computing than there are cores, enough to fill them, few enough that
    # their working sets stay in cache; batches: one per core, since each running batch holds its
    # MLP's temporaries (the others wait their turn, or at the barrier)
    running = threading.Semaphore(torch.get_num_threads() + (0 if batched else 1))
    # float16 is left out: its sums of squares overflow at 65504
    gram_dtype = torch.bfloat16 if autocast == torch.bfloat16 else torch.float32

    def add(gi: int, x: Tensor) -> None:
        with torch.autocast(x.device.type, enabled=False):  # gram_dtype decides, not autocast
            xtx = gram(x)
        with lock:
            sums[gi] = xtx.double() if sums[gi] is None else sums[gi].add_(xtx)
            tokens[gi] += x.shape[0]
        # xtx is not held while waiting: 32 waiting inputs x a 1536^2 Gram was most of the peak memory

    def arrive() -> None:
        running.release()
        local.held = False
        gate.wait()  # every input has arrived: the caller quantizes the group
        gate.wait()  # the group is quantized: go on through it
        running.acquire()
        local.held = True

    def hook(_m: nn.Module, a: tuple, gi: int) -> None:
        if gi < local.next:
            if gi in local.skipped:  # its group was quantized without this input: the order differs by input
                raise ValueError(f"layer {groups[gi][0]!r} was reached after {groups[local.next - 1][0]!r} by one "
                                 f"input but before it by another (routed layers?); quantize this block with the "
                                 f"Hessians of its unquantized forward (e.g. GPTQ(true_sequential=False))")
            return  # a layer called again after its group was quantized
        for skipped in range(local.next, gi):
            local.skipped.add(skipped)
            arrive()
        local.next = gi + 1
        x = a[0].reshape(-1, a[0].shape[-1]).to(gram_dtype)
        add(gi, x)
        # x may be a converted copy of the input: dropped before waiting, or 8 waiting batches held
        # 100 MB of copies at the down projection's barrier
        del x
        arrive()

    def work(i: int) -> None:
        torch.set_num_threads(1)
        local.next, local.skipped = 0, set()
        running.acquire()
        local.held = True
        try:
            # grad mode and autocast are per thread
            with torch.no_grad(), torch.autocast(inputs[i].device.type, dtype=autocast, enabled=autocast is not None):
                outputs[i] = run_block(block, inputs[i], kwargs)
            for _rest in range(local.next, len(groups)):
                arrive()
        except threading.BrokenBarrierError:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            errors.append(e)
            gate.abort()
        finally:
            if local.held:
                running.release()

    hooks = [lin[name].register_forward_pre_hook(lambda m, a, gi=gi: hook(m, a, gi)) for name, gi in leads.items()]
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for gi in range(len(groups)):
            gate.wait()
            h, sums[gi] = sums[gi], None
            h = torch.zeros(0) if h is None else h.float()  # the float64 sum is freed before the quantizer runs
            on_group(gi, h, tokens[gi])
            del h
            gate.wait()
    except threading.BrokenBarrierError:
        pass
    except BaseException:
        gate.abort()
        raise
    finally:
        for t in threads:
            t.join()
        for hk in hooks:
            hk.remove()
    if errors:
        raise errors[0]
    # every thread finished without error, so all outputs are set; batches go back to one output per input
    sizes = [[singles[i].shape[0] for i in r] for r in spans]
    return [part for out, sz in zip(outputs, sizes, strict=True) for part in torch.split(out, sz)]  # type: ignore[arg-type]


def give_back_memory() -> None:
    """Return freed heap memory to the OS (glibc's malloc_trim), so a block's temporaries do not raise the peak of the next.

    A block's float weights and activations are freed after it is quantized, but glibc keeps the
    freed pages and the process's resident size only grows; trimming after each block keeps the
    peak at one block's worth. A no-op where the C library has no malloc_trim.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def bounded_heap() -> None:
    """Ask glibc to hand large blocks straight back to the OS and to keep few per-thread arenas.

    The inline GPTQ pass runs every calibration sample in its own thread; with glibc's defaults
    (up to 8 arenas per core, a mmap threshold that rises to 32 MB after the first large free)
    each thread's freed attention scores and MLP activations stayed in its arena, and the peak
    resident size of quantizing SmolLM2-135M was 2.2 GB instead of 1.2 GB. Process-wide and
    irreversible (a quantization process is what calls it); a no-op without glibc.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks over 1 MiB are mapped and unmapped on free
        libc.mallopt(-8, 2)  # M_ARENA_MAX


def _libc() -> Any:
    import ctypes
    import ctypes.util

    global _TRIM
    if _TRIM is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _TRIM = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _TRIM = False
    return _TRIM or None


_TRIM: Any = None


def quantized_layer(layer: nn.Module, codes: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig) -> QuantLinear:
    """Build the QuantLinear replacing `layer` (its bias kept), on the exact torch path while quantizing.

    The next blocks' calibration inputs go through it, so it computes what the float pipeline
    would; `quantize_model` switches every layer to its serving path when it is done.
    """
    bias = getattr(layer, "bias", None)
    return QuantLinear.from_codes(codes, scales, zeros, cfg, None if bias is None else bias.detach(), kernel="torch")


def forward_all(block: nn.Module, inputs: Sequence[Tensor], kwargs: dict[str, Any]) -> list[Tensor]:
    """Return the block's outputs for every input (the next block's inputs)."""
    with torch.no_grad():
        return [run_block(block, x, kwargs) for x in inputs]
