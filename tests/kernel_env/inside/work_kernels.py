"""Triton kernels for the work-recording and roofline tests (a real file: Triton reads kernel source).

Each pair differs in one thing a GPU pays for: program count, HBM round trips, reuse, launches.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


@triton.jit
def scale_kernel(x_ptr, out_ptr, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * factor, mask=mask)


@triton.jit
def shift_kernel(x_ptr, out_ptr, n, shift, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + shift, mask=mask)


@triton.jit
def fused_kernel(x_ptr, out_ptr, n, factor, shift, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(x * factor + shift, 0.0), mask=mask)


@triton.jit
def twice_far_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """relu(x) + relu(roll(x, n/2)): every element is read by two programs half a grid apart."""
    pid = tl.program_id(0)
    half = tl.num_programs(0) // 2
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    other = ((pid + half) % tl.num_programs(0)) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(x_ptr + offs, mask=offs < n)
    b = tl.load(x_ptr + other, mask=other < n)
    tl.store(out_ptr + offs, tl.maximum(a, 0.0) + tl.maximum(b, 0.0), mask=offs < n)


@triton.jit
def once_double_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """2 * relu(x): the same arithmetic as ``twice_far_kernel``, each element read once."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(a, 0.0) + tl.maximum(a, 0.0), mask=mask)


@triton.jit
def twice_same_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """2 * relu(x) loading the same block twice in one program: L1 (or the compiler) absorbs it."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(x_ptr + offs, mask=mask)
    b = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, tl.maximum(a, 0.0) + tl.maximum(b, 0.0), mask=mask)


@triton.jit
def copy_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask), mask=mask)


@triton.jit
def naive_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK_K: tl.constexpr):
    """One output element per program: a row of A and a (strided) column of B, every time."""
    pid = tl.program_id(0)
    row = pid // N
    col = pid % N
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        ks = k + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + row * K + ks, mask=ks < K, other=0.0)
        b = tl.load(b_ptr + ks * N + col, mask=ks < K, other=0.0)
        acc += a * b
    tl.store(c_ptr + row * N + col, tl.sum(acc, axis=0))


@triton.jit
def tiled_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                        GROUP: tl.constexpr):
    """A BM x BN tile per program with tl.dot, programs grouped so neighbours share panels of A and B."""
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BM)
    tiles_n = tl.cdiv(N, BN)
    per_group = GROUP * tiles_n
    first_m = (pid // per_group) * GROUP
    size_m = min(tiles_m - first_m, GROUP)
    pid_m = first_m + (pid % per_group) % size_m
    pid_n = (pid % per_group) // size_m
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        rk = k + tl.arange(0, BK)
        a = tl.load(a_ptr + rm[:, None] * K + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + rk[:, None] * N + rn[None, :], mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def first_program_does_all_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """Program 0 loops over the whole tensor; the rest of the grid exits at once."""
    if tl.program_id(0) == 0:
        for start in range(0, n, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


@triton.jit
def last_program_does_all_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    if tl.program_id(0) == tl.num_programs(0) - 1:
        for start in range(0, n, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


@triton.jit
def middle_program_does_all_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    if tl.program_id(0) == tl.num_programs(0) // 2:
        for start in range(0, n, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


@triton.jit
def persistent_relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """A fixed grid whose programs stride over the tensor: the grid does not follow the size."""
    for start in range(tl.program_id(0) * BLOCK, n, tl.num_programs(0) * BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


# -- wrappers: what a candidate's forward would do ---------------------------------------------------

def relu(x, block=1024):
    out = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), BLOCK=block)
    return out


def fused(x, block=1024):
    out = torch.empty_like(x)
    fused_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), 2.0, 1.0, BLOCK=block)
    return out


def separate(x, block=1024):
    grid = (triton.cdiv(x.numel(), block),)
    scaled, shifted = torch.empty_like(x), torch.empty_like(x)
    scale_kernel[grid](x, scaled, x.numel(), 2.0, BLOCK=block)
    shift_kernel[grid](scaled, shifted, x.numel(), 1.0, BLOCK=block)
    return relu(shifted, block)


def launch(kernel, x, grid=None, block=1024):
    out = torch.empty_like(x)
    kernel[grid or (triton.cdiv(x.numel(), block),)](x, out, x.numel(), BLOCK=block)
    return out


def naive_matmul(a, b):
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty(m, n)
    naive_matmul_kernel[(m * n,)](a, b, c, m, n, k, BLOCK_K=128)
    return c


def tiled_matmul(a, b, bm=64, bn=64, bk=32):
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty(m, n)
    tiled_matmul_kernel[(triton.cdiv(m, bm) * triton.cdiv(n, bn),)](a, b, c, m, n, k, BM=bm, BN=bn, BK=bk, GROUP=8)
    return c
