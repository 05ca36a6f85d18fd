// CUDA kernels of the vtrack attention ops (float32, float16, bfloat16; float64 for gradcheck).
//
// Same semantics as the CPU kernels and the reference (docs/kernels.md); any head dim D <= 128.
//   * dense / FDA forward: tiled over keys (32-key tiles of K and V in shared memory, query rows in
//     shared memory, 4 warps x 4 rows per block), online softmax; FDA bias from q.k and the squared
//     norms; writes out and the row log-sum-exp.
//   * top-K forward: a warp per query row; logits of the row in shared memory (computed against
//     shared K tiles), the K-th largest by bisection over order-preserving integer keys with warp
//     counting, then kept indices in ascending order (ties toward the lower index) saved for the
//     backward, softmax over the kept keys and a gather of V.
//   * CE: the template rows' probabilities toward the search keys from the final log-sum-exp.
//   * backward: Di = rowsum(dO * O); dQ (and the FDA coefficient gradients) row-oriented, dK/dV
//     key-oriented (32 keys per block, shared-memory accumulators), both recomputing the logits
//     from the saved LSE; top-K backward sparse over the saved indices (atomics for dK/dV).
// Accumulation is in float32. float64 is left to the CPU kernels and the reference (gradcheck runs
// there); the kernels are written for it (Acc<double>) but not instantiated, to keep builds short.
#define VTRACK_DISPATCH_CUDA_TYPES(TYPE, NAME, ...)                            \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::ScalarType::Float, __VA_ARGS__)                   \
                         AT_DISPATCH_CASE(at::ScalarType::Half, __VA_ARGS__)                            \
                             AT_DISPATCH_CASE(at::ScalarType::BFloat16, __VA_ARGS__))
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../checks.h"

namespace vtrack {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxD = 128;
constexpr int kChunks = kMaxD / kWarp;  // d values per lane
constexpr int kTileK = 32;              // keys per shared tile
constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr unsigned kFull = 0xffffffffu;
constexpr int64_t kMaxTopkKeys = 8192;  // top-K keeps the logits of a row in shared memory
constexpr size_t kMaxSmem = 160 * 1024;  // opt-in shared memory we request at most (sm_80: 163 KB)

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
template <typename A>
__device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
template <typename A>
__device__ __forceinline__ A warp_min(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ int warp_sum_int(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ float dexp(float x) { return __expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(float x) { return __logf(x); }
__device__ __forceinline__ double dlog(double x) { return log(x); }

template <typename A>
__device__ __forceinline__ A neg_inf() {
  return -std::numeric_limits<A>::infinity();
}
template <typename A>
__device__ __forceinline__ A pos_inf() {
  return std::numeric_limits<A>::infinity();
}

// Order-preserving integer image of a float (for bisection over representable values).
__device__ __forceinline__ int32_t to_key(float x) {
  const int32_t b = __float_as_int(x);
  return b >= 0 ? b : (b ^ 0x7fffffff);
}
__device__ __forceinline__ float from_key(int32_t k) { return __int_as_float(k >= 0 ? k : (k ^ 0x7fffffff)); }
__device__ __forceinline__ int64_t to_key(double x) {
  const long long b = __double_as_longlong(x);
  return b >= 0 ? b : (b ^ 0x7fffffffffffffffLL);
}
__device__ __forceinline__ double from_key(int64_t k) {
  return __longlong_as_double(k >= 0 ? k : (k ^ 0x7fffffffffffffffLL));
}

// Everything a kernel needs about the problem (raw pointers, contiguous tensors).
template <typename scalar_t>
struct Params {
  using acc_t = typename Acc<scalar_t>::type;
  const scalar_t* q;
  const scalar_t* k;
  const scalar_t* v;
  scalar_t* out;
  acc_t* lse;
  int32_t* index;       // [B,H,N,K] (top-K)
  const bool* mask;     // [B,M] or null
  const acc_t* alpha;   // FDA: the rows of coef [3, H] (alpha, beta, delta), or null
  const acc_t* beta;
  const acc_t* delta;
  int B, H, N, M, D, K;
  acc_t scale;
};

template <typename A>
struct FdaCoef {
  A a, b, dl;
};

template <typename scalar_t, typename A>
__device__ __forceinline__ FdaCoef<A> coef_of(const Params<scalar_t>& p, int h) {
  if (p.alpha == nullptr) return FdaCoef<A>{A(0), A(0), A(0)};
  return FdaCoef<A>{p.alpha[h], p.beta[h], p.delta[h]};
}

// Final logit from the raw q.k product (scale, FDA bias).
template <typename A>
__device__ __forceinline__ A make_logit(bool FDA, A qk, A qn, A kn, A scale, const FdaCoef<A>& c) {
  A s = qk * scale;
  if (FDA) {
    const A d2 = max(qn + kn - A(2) * qk, A(0));
    const A rep = c.dl * d2;
    s += c.a * dexp(-rep) - c.b * rep;
  }
  return s;
}

// Loads a tile of `rows` rows of a [*, D] matrix (starting at row r0 of n) into shared memory as acc_t
// with row stride ld; rows past n are zero.
template <typename scalar_t, typename A>
__device__ __forceinline__ void load_tile(A* dst, int ld, const scalar_t* src, int r0, int rows, int n, int D) {
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    dst[r * ld + d] = (r0 + r < n) ? static_cast<A>(src[static_cast<int64_t>(r0 + r) * D + d]) : A(0);
  }
}

// Squared norms of the first `rows` rows of a tile in shared memory (the FDA |q|^2 / |k|^2), one thread per row.
template <typename A>
__device__ __forceinline__ void tile_sq_norms(A* dst, const A* tile, int ld, int rows, int D) {
  if (threadIdx.x < rows) {
    A s = 0;
    for (int d = 0; d < D; ++d) s += tile[threadIdx.x * ld + d] * tile[threadIdx.x * ld + d];
    dst[threadIdx.x] = s;
  }
}

// Where a block of the tiled kernels works: its (batch, head) from blockIdx.y, the thread's warp and
// lane, the q/k offsets of the head, the batch's key mask row (or null) and the head's FDA coefficients.
template <typename A>
struct BlockSetup {
  int bh, b, h, warp, lane;
  int64_t qoff, koff;
  const bool* mrow;
  FdaCoef<A> c;
};

template <typename scalar_t, typename A>
__device__ __forceinline__ BlockSetup<A> block_setup(const Params<scalar_t>& p) {
  BlockSetup<A> s;
  s.bh = blockIdx.y;
  s.b = s.bh / p.H;
  s.h = s.bh % p.H;
  s.warp = threadIdx.x / kWarp;
  s.lane = threadIdx.x % kWarp;
  s.qoff = static_cast<int64_t>(s.bh) * p.N * p.D;
  s.koff = static_cast<int64_t>(s.bh) * p.M * p.D;
  s.mrow = p.mask != nullptr ? p.mask + static_cast<int64_t>(s.b) * p.M : nullptr;
  s.c = coef_of<scalar_t, A>(p, s.h);
  return s;
}

// The key loop step of the row-oriented kernels (dense forward, dQ): the K and V tiles at key j0 (and,
// with FDA, the keys' squared norms) into shared memory, synchronised before and after.
template <typename scalar_t, typename A>
__device__ __forceinline__ void load_kv_tiles(const Params<scalar_t>& p, int64_t koff, int j0, int ld, bool FDA, A* Ks,
                                              A* Vs, A* kn) {
  __syncthreads();
  load_tile<scalar_t, A>(Ks, ld, p.k + koff, j0, kTileK, p.M, p.D);
  load_tile<scalar_t, A>(Vs, ld, p.v + koff, j0, kTileK, p.M, p.D);
  __syncthreads();
  if (FDA) tile_sq_norms<A>(kn, Ks, ld, kTileK, p.D);
  __syncthreads();
}

// ------------------------------------------------------------------------------------------------
// Dense / FDA forward: online softmax over 32-key tiles.
// grid: (ceil(N / 16), B*H); block: 128 threads.
// ------------------------------------------------------------------------------------------------
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps* kWarp) dense_forward_kernel(Params<scalar_t> p) {
  const bool FDA = p.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  extern __shared__ unsigned char smem_raw[];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int D = p.D, ld = D + 1;
  A* Qs = smem;                          // [16][ld]
  A* Ks = Qs + kRowsPerBlock * ld;       // [32][ld]
  A* Vs = Ks + kTileK * ld;              // [32][ld]
  A* qn = Vs + kTileK * ld;              // [16]
  A* kn = qn + kRowsPerBlock;            // [32]

  const BlockSetup<A> bs = block_setup<scalar_t, A>(p);
  const int bh = bs.bh, warp = bs.warp, lane = bs.lane;
  const int64_t qoff = bs.qoff;
  const bool* mrow = bs.mrow;
  const FdaCoef<A> c = bs.c;
  const int i0 = blockIdx.x * kRowsPerBlock;

  load_tile<scalar_t, A>(Qs, ld, p.q + qoff, i0, kRowsPerBlock, p.N, D);
  __syncthreads();
  if (FDA) tile_sq_norms<A>(qn, Qs, ld, kRowsPerBlock, D);

  A m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = neg_inf<A>();
    l[r] = 0;
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) acc[r][cc] = 0;
  }

  for (int j0 = 0; j0 < p.M; j0 += kTileK) {
    load_kv_tiles<scalar_t, A>(p, bs.koff, j0, ld, FDA, Ks, Vs, kn);
    const int j = j0 + lane;
    const bool valid = j < p.M && (mrow == nullptr || !mrow[j]);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int rr = warp * kRowsPerWarp + r;
      if (i0 + rr >= p.N) break;  // warp-uniform
      A qk = 0;
      for (int d = 0; d < D; ++d) qk += Qs[rr * ld + d] * Ks[lane * ld + d];
      const A s = valid ? make_logit<A>(FDA, qk, FDA ? qn[rr] : A(0), FDA ? kn[lane] : A(0), p.scale, c)
                        : neg_inf<A>();
      const A m_new = max(m[r], warp_max(s));
      if (m_new == neg_inf<A>()) continue;  // nothing valid yet (warp-uniform)
      const A corr = dexp(m[r] - m_new);
      const A e = valid ? dexp(s - m_new) : A(0);
      l[r] = l[r] * corr + warp_sum(e);
#pragma unroll
      for (int cc = 0; cc < kChunks; ++cc) acc[r][cc] *= corr;
      for (int jj = 0; jj < kTileK; ++jj) {
        const A pj = __shfl_sync(kFull, e, jj);
#pragma unroll
        for (int cc = 0; cc < kChunks; ++cc) {
          const int d = lane + cc * kWarp;
          if (d < D) acc[r][cc] += pj * Vs[jj * ld + d];
        }
      }
      m[r] = m_new;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = i0 + warp * kRowsPerWarp + r;
    if (i >= p.N) break;
    const A inv = l[r] > A(0) ? A(1) / l[r] : A(0);
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) {
      const int d = lane + cc * kWarp;
      if (d < D) p.out[qoff + static_cast<int64_t>(i) * D + d] = static_cast<scalar_t>(acc[r][cc] * inv);
    }
    if (lane == 0) p.lse[static_cast<int64_t>(bh) * p.N + i] = l[r] > A(0) ? m[r] + dlog(l[r]) : pos_inf<A>();
  }
}

// ------------------------------------------------------------------------------------------------
// Top-K forward: a warp per row, 4 rows per block; the block shares K tiles.
// grid: (ceil(N / 4), B*H); block: 128 threads; dynamic smem: 4*M (logits) + tiles.
// ------------------------------------------------------------------------------------------------
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps* kWarp) topk_forward_kernel(Params<scalar_t> p) {
  const bool FDA = p.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  using Key = std::conditional_t<std::is_same<A, double>::value, int64_t, int32_t>;
  extern __shared__ unsigned char smem_raw[];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int D = p.D, ld = D + 1, M = p.M, K = p.K;
  A* Qs = smem;                      // [4][ld]
  A* Ks = Qs + kWarps * ld;          // [32][ld]
  A* qn = Ks + kTileK * ld;          // [4]
  A* kn = qn + kWarps;               // [32]
  A* S = kn + kTileK;                // [4][M]

  const BlockSetup<A> bs = block_setup<scalar_t, A>(p);
  const int bh = bs.bh, warp = bs.warp, lane = bs.lane;
  const int64_t qoff = bs.qoff, koff = bs.koff;
  const bool* mrow = bs.mrow;
  const FdaCoef<A> c = bs.c;
  const int i = blockIdx.x * kWarps + warp;
  A* Sw = S + static_cast<int64_t>(warp) * M;

  load_tile<scalar_t, A>(Qs, ld, p.q + qoff, blockIdx.x * kWarps, kWarps, p.N, D);
  __syncthreads();
  if (FDA) tile_sq_norms<A>(qn, Qs, ld, kWarps, D);
  for (int j0 = 0; j0 < M; j0 += kTileK) {
    __syncthreads();
    load_tile<scalar_t, A>(Ks, ld, p.k + koff, j0, kTileK, M, D);
    __syncthreads();
    if (FDA) tile_sq_norms<A>(kn, Ks, ld, kTileK, D);
    __syncthreads();
    const int j = j0 + lane;
    if (j < M) {
      A qk = 0;
      for (int d = 0; d < D; ++d) qk += Qs[warp * ld + d] * Ks[lane * ld + d];
      const bool valid = mrow == nullptr || !mrow[j];
      Sw[j] = valid ? make_logit<A>(FDA, qk, FDA ? qn[warp] : A(0), FDA ? kn[lane] : A(0), p.scale, c)
                    : neg_inf<A>();
    }
  }
  __syncwarp();
  if (i >= p.N) return;  // after the last __syncthreads: whole warps leave

  int32_t* irow = p.index + (static_cast<int64_t>(bh) * p.N + i) * K;
  scalar_t* orow = p.out + qoff + static_cast<int64_t>(i) * D;
  A* lrow = p.lse + static_cast<int64_t>(bh) * p.N + i;
  // Row max, NaN check and number of valid keys.
  A mx = neg_inf<A>();
  int nan = 0, nvalid = 0;
  for (int j = lane; j < M; j += kWarp) {
    const A s = Sw[j];
    nan |= (s != s);
    mx = max(mx, s);
    nvalid += (mrow == nullptr || !mrow[j]);
  }
  mx = warp_max(mx);
  nan = warp_sum_int(nan);
  nvalid = warp_sum_int(nvalid);
  if (nan || mx == neg_inf<A>()) {
    const A fill = nan ? std::numeric_limits<A>::quiet_NaN() : A(0);
    for (int d = lane; d < D; d += kWarp) orow[d] = static_cast<scalar_t>(fill);
    for (int t = lane; t < K; t += kWarp) irow[t] = -1;
    if (lane == 0) *lrow = nan ? std::numeric_limits<A>::quiet_NaN() : pos_inf<A>();
    return;
  }
  // tau: the K-th largest valid logit (or the smallest valid one when K >= nvalid).
  const int keep = min(K, nvalid);
  Key klo = to_key(std::numeric_limits<A>::lowest());
  Key khi = to_key(nextafter(mx, pos_inf<A>()));
  using UKey = std::make_unsigned_t<Key>;
  while (klo < khi && static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) > 1) {
    const Key kmid = static_cast<Key>(static_cast<UKey>(klo) +
                                      static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) / 2);
    const A t = from_key(kmid);
    int cnt = 0;
    for (int j = lane; j < M; j += kWarp) cnt += Sw[j] >= t;
    cnt = warp_sum_int(cnt);
    if (cnt >= keep) {
      klo = kmid;
      if (cnt == keep) break;
    } else {
      khi = kmid;
    }
  }
  const A lo = from_key(klo);
  A tau = pos_inf<A>();
  int n_gt = 0;
  for (int j = lane; j < M; j += kWarp) {
    const A s = Sw[j];
    if (s >= lo) tau = min(tau, s);
  }
  tau = warp_min(tau);
  for (int j = lane; j < M; j += kWarp) n_gt += Sw[j] > tau;
  n_gt = warp_sum_int(n_gt);
  // Compaction in ascending key order: every logit > tau, then the first (keep - n_gt) equal to tau.
  int taken = 0, eq_taken = 0;
  const int need_eq = keep - n_gt;
  A sum = 0;
  for (int j0 = 0; j0 < M && taken < keep; j0 += kWarp) {
    const int j = j0 + lane;
    const A s = j < M ? Sw[j] : neg_inf<A>();
    const bool gt = j < M && s > tau;
    const bool eq = j < M && s == tau;
    const unsigned eq_mask = __ballot_sync(kFull, eq);
    const int eq_rank = eq_taken + __popc(eq_mask & ((1u << lane) - 1u));
    const bool take = gt || (eq && eq_rank < need_eq);
    const unsigned take_mask = __ballot_sync(kFull, take);
    const int pos = taken + __popc(take_mask & ((1u << lane) - 1u));
    if (take && pos < keep) {
      irow[pos] = j;
      sum += dexp(s - mx);
    }
    taken += __popc(take_mask);
    eq_taken += __popc(eq_mask);
  }
  taken = min(taken, keep);
  for (int t = taken + lane; t < K; t += kWarp) irow[t] = -1;
  sum = warp_sum(sum);
  __syncwarp();
  A acc[kChunks];
#pragma unroll
  for (int cc = 0; cc < kChunks; ++cc) acc[cc] = 0;
  const A inv = A(1) / sum;
  for (int t = 0; t < taken; ++t) {
    const int j = irow[t];
    const A pj = dexp(Sw[j] - mx) * inv;
    const scalar_t* vj = p.v + koff + static_cast<int64_t>(j) * D;
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) {
      const int d = lane + cc * kWarp;
      if (d < D) acc[cc] += pj * static_cast<A>(vj[d]);
    }
  }
#pragma unroll
  for (int cc = 0; cc < kChunks; ++cc) {
    const int d = lane + cc * kWarp;
    if (d < D) orow[d] = static_cast<scalar_t>(acc[cc]);
  }
  if (lane == 0) *lrow = mx + dlog(sum);
}

// ------------------------------------------------------------------------------------------------
// CE: probabilities of the template rows toward the search keys, from the final LSE.
// grid: (T, B*H); block: 32 threads. ce [B,H,T,Ls] (acc_t), zero-initialised for top-K.
// ------------------------------------------------------------------------------------------------
template <typename scalar_t>
__global__ void ce_probs_kernel(Params<scalar_t> p, bool TOPK, const int64_t* template_rows, int T, int num_template,
                                typename Params<scalar_t>::acc_t* ce) {
  const bool FDA = p.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  const int t = blockIdx.x, bh = blockIdx.y, b = bh / p.H, h = bh % p.H, lane = threadIdx.x;
  const int64_t row = template_rows[t];
  if (row < 0 || row >= num_template || row >= p.N) return;
  const int D = p.D, Ls = p.M - num_template;
  const int64_t qoff = static_cast<int64_t>(bh) * p.N * D, koff = static_cast<int64_t>(bh) * p.M * D;
  const scalar_t* qi = p.q + qoff + row * D;
  const A li = p.lse[static_cast<int64_t>(bh) * p.N + row];
  const FdaCoef<A> c = coef_of<scalar_t, A>(p, h);
  A qn = 0;
  if (FDA)
    for (int d = 0; d < D; ++d) qn += static_cast<A>(qi[d]) * static_cast<A>(qi[d]);
  A* dst = ce + (static_cast<int64_t>(bh) * T + t) * Ls;
  const bool* mrow = p.mask != nullptr ? p.mask + static_cast<int64_t>(b) * p.M : nullptr;
  auto prob = [&](int j) -> A {
    const scalar_t* kj = p.k + koff + static_cast<int64_t>(j) * D;
    A qk = 0, kn = 0;
    for (int d = 0; d < D; ++d) {
      const A kd = static_cast<A>(kj[d]);
      qk += static_cast<A>(qi[d]) * kd;
      if (FDA) kn += kd * kd;
    }
    return dexp(make_logit<A>(FDA, qk, qn, kn, p.scale, c) - li);
  };
  if (TOPK) {
    const int32_t* irow = p.index + (static_cast<int64_t>(bh) * p.N + row) * p.K;
    for (int u = lane; u < p.K; u += kWarp) {
      const int j = irow[u];
      if (j >= num_template && j < p.M) dst[j - num_template] = prob(j);
    }
  } else {
    for (int j = num_template + lane; j < p.M; j += kWarp) {
      const bool valid = mrow == nullptr || !mrow[j];
      dst[j - num_template] = valid ? prob(j) : A(0);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Backward
// ------------------------------------------------------------------------------------------------

// Di = rowsum(dO * O); a warp per row. grid: (ceil(B*H*N / 4)); block 128.
template <typename scalar_t>
__global__ void row_dot_kernel(const scalar_t* dout, const scalar_t* out, typename Acc<scalar_t>::type* di,
                               int64_t rows, int D) {
  using A = typename Acc<scalar_t>::type;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  A s = 0;
  for (int d = lane; d < D; d += kWarp) s += static_cast<A>(dout[r * D + d]) * static_cast<A>(out[r * D + d]);
  s = warp_sum(s);
  if (lane == 0) di[r] = s;
}

template <typename scalar_t>
struct BwdParams {
  using acc_t = typename Acc<scalar_t>::type;
  Params<scalar_t> f;      // forward problem (q, k, v, mask, coefficients, lse, index)
  const scalar_t* dout;
  const acc_t* di;
  scalar_t* dq;
  scalar_t* dk;            // dense path
  scalar_t* dv;
  acc_t* dk_acc;           // top-K path: [B,H,M,D] accumulators
  acc_t* dv_acc;
  acc_t* dcoef;            // [B,H,3]
};

// Per-entry backward quantities: returns p, writes g (coefficient of k_j in dq_i and of q_i in dk_j)
// and h (FDA: coefficient of 2(q_i - k_j)); accumulates the coefficient gradients.
template <typename A>
__device__ __forceinline__ A entry_grad(bool FDA, A qk, A qn, A kn, A dp, A li, A di, A scale, const FdaCoef<A>& c, bool valid,
                                        A& g, A& hterm, A& ga, A& gb, A& gd) {
  A logit = qk * scale, d2raw = 0, d2 = 0, e = 0;
  if (FDA) {
    d2raw = qn + kn - A(2) * qk;
    d2 = max(d2raw, A(0));
    e = dexp(-c.dl * d2);
    logit += c.a * e - c.b * c.dl * d2;
  }
  const A pr = valid ? dexp(logit - li) : A(0);
  const A ds = pr * (dp - di);
  g = ds * scale;
  hterm = 0;
  if (FDA) {
    hterm = d2raw >= A(0) ? ds * (-c.dl * (c.a * e + c.b)) : A(0);
    g -= A(2) * hterm;
    ga += ds * e;
    gb -= ds * c.dl * d2;
    gd -= ds * d2 * (c.a * e + c.b);
  }
  return pr;
}

// dQ (and FDA coefficient gradients), row-oriented like the forward. grid (ceil(N/16), B*H); block 128.
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps* kWarp) dense_dq_kernel(BwdParams<scalar_t> bp) {
  const bool FDA = bp.f.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  const Params<scalar_t>& p = bp.f;
  extern __shared__ unsigned char smem_raw[];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int D = p.D, ld = D + 1;
  A* Qs = smem;                        // [16][ld]
  A* dOs = Qs + kRowsPerBlock * ld;    // [16][ld]
  A* Ks = dOs + kRowsPerBlock * ld;    // [32][ld]
  A* Vs = Ks + kTileK * ld;            // [32][ld]
  A* qn = Vs + kTileK * ld;            // [16]
  A* kn = qn + kRowsPerBlock;          // [32]

  const BlockSetup<A> bs = block_setup<scalar_t, A>(p);
  const int bh = bs.bh, warp = bs.warp, lane = bs.lane;
  const int64_t qoff = bs.qoff;
  const bool* mrow = bs.mrow;
  const FdaCoef<A> c = bs.c;
  const int i0 = blockIdx.x * kRowsPerBlock;

  load_tile<scalar_t, A>(Qs, ld, p.q + qoff, i0, kRowsPerBlock, p.N, D);
  load_tile<scalar_t, A>(dOs, ld, bp.dout + qoff, i0, kRowsPerBlock, p.N, D);
  __syncthreads();
  if (FDA) tile_sq_norms<A>(qn, Qs, ld, kRowsPerBlock, D);
  A acc[kRowsPerWarp][kChunks], rowh[kRowsPerWarp];
  A ga = 0, gb = 0, gd = 0;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    rowh[r] = 0;
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) acc[r][cc] = 0;
  }
  for (int j0 = 0; j0 < p.M; j0 += kTileK) {
    load_kv_tiles<scalar_t, A>(p, bs.koff, j0, ld, FDA, Ks, Vs, kn);
    const int j = j0 + lane;
    const bool valid = j < p.M && (mrow == nullptr || !mrow[j]);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int rr = warp * kRowsPerWarp + r;
      const int i = i0 + rr;
      if (i >= p.N) break;
      A qk = 0, dp = 0;
      for (int d = 0; d < D; ++d) {
        qk += Qs[rr * ld + d] * Ks[lane * ld + d];
        dp += dOs[rr * ld + d] * Vs[lane * ld + d];
      }
      const int64_t row = static_cast<int64_t>(bh) * p.N + i;
      A g, hterm;
      entry_grad<A>(FDA, qk, FDA ? qn[rr] : A(0), FDA ? kn[lane] : A(0), dp, p.lse[row], bp.di[row], p.scale, c,
                         valid, g, hterm, ga, gb, gd);
      if (FDA) rowh[r] += hterm;
      for (int jj = 0; jj < kTileK; ++jj) {
        const A gj = __shfl_sync(kFull, g, jj);
#pragma unroll
        for (int cc = 0; cc < kChunks; ++cc) {
          const int d = lane + cc * kWarp;
          if (d < D) acc[r][cc] += gj * Ks[jj * ld + d];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int rr = warp * kRowsPerWarp + r;
    const int i = i0 + rr;
    if (i >= p.N) break;
    const A rh = FDA ? warp_sum(rowh[r]) : A(0);
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) {
      const int d = lane + cc * kWarp;
      if (d < D)
        bp.dq[qoff + static_cast<int64_t>(i) * D + d] = static_cast<scalar_t>(acc[r][cc] + A(2) * rh * Qs[rr * ld + d]);
    }
  }
  if (FDA) {
    ga = warp_sum(ga);
    gb = warp_sum(gb);
    gd = warp_sum(gd);
    if (lane == 0) {
      atomicAdd(bp.dcoef + bh * 3 + 0, ga);
      atomicAdd(bp.dcoef + bh * 3 + 1, gb);
      atomicAdd(bp.dcoef + bh * 3 + 2, gd);
    }
  }
}

// dK, dV: a block owns 32 keys and walks over all query rows in tiles of 16. grid (ceil(M/32), B*H).
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps* kWarp) dense_dkv_kernel(BwdParams<scalar_t> bp) {
  const bool FDA = bp.f.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  const Params<scalar_t>& p = bp.f;
  extern __shared__ unsigned char smem_raw[];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int D = p.D, ld = D + 1;
  A* Ks = smem;                        // [32][ld]
  A* Vs = Ks + kTileK * ld;            // [32][ld]
  A* dKs = Vs + kTileK * ld;           // [32][ld]
  A* dVs = dKs + kTileK * ld;          // [32][ld]
  A* Qs = dVs + kTileK * ld;           // [16][ld]
  A* dOs = Qs + kRowsPerBlock * ld;    // [16][ld]
  A* kn = dOs + kRowsPerBlock * ld;    // [32]
  A* colh = kn + kTileK;               // [32]
  A* qn = colh + kTileK;               // [16]

  const BlockSetup<A> bs = block_setup<scalar_t, A>(p);
  const int bh = bs.bh, warp = bs.warp, lane = bs.lane;
  const int64_t qoff = bs.qoff, koff = bs.koff;
  const bool* mrow = bs.mrow;
  const FdaCoef<A> c = bs.c;
  const int j0 = blockIdx.x * kTileK;
  const int j = j0 + lane;
  const bool valid = j < p.M && (mrow == nullptr || !mrow[j]);

  load_tile<scalar_t, A>(Ks, ld, p.k + koff, j0, kTileK, p.M, D);
  load_tile<scalar_t, A>(Vs, ld, p.v + koff, j0, kTileK, p.M, D);
  for (int e = threadIdx.x; e < kTileK * ld; e += blockDim.x) {
    dKs[e] = 0;
    dVs[e] = 0;
  }
  if (threadIdx.x < kTileK) colh[threadIdx.x] = 0;
  __syncthreads();
  if (FDA) tile_sq_norms<A>(kn, Ks, ld, kTileK, D);
  A my_colh = 0, unused_a = 0, unused_b = 0, unused_d = 0;
  for (int r0 = 0; r0 < p.N; r0 += kRowsPerBlock) {
    __syncthreads();
    load_tile<scalar_t, A>(Qs, ld, p.q + qoff, r0, kRowsPerBlock, p.N, D);
    load_tile<scalar_t, A>(dOs, ld, bp.dout + qoff, r0, kRowsPerBlock, p.N, D);
    __syncthreads();
    if (FDA) tile_sq_norms<A>(qn, Qs, ld, kRowsPerBlock, D);
    __syncthreads();
    for (int rr = warp; rr < kRowsPerBlock; rr += kWarps) {
      const int i = r0 + rr;
      if (i >= p.N) break;
      A qk = 0, dp = 0;
      for (int d = 0; d < D; ++d) {
        qk += Qs[rr * ld + d] * Ks[lane * ld + d];
        dp += dOs[rr * ld + d] * Vs[lane * ld + d];
      }
      const int64_t row = static_cast<int64_t>(bh) * p.N + i;
      A g, hterm;
      const A pr = entry_grad<A>(FDA, qk, FDA ? qn[rr] : A(0), FDA ? kn[lane] : A(0), dp, p.lse[row], bp.di[row],
                                      p.scale, c, valid, g, hterm, unused_a, unused_b, unused_d);
      if (FDA) my_colh += hterm;
      if (pr != A(0) || g != A(0)) {
        for (int d = 0; d < D; ++d) {
          atomicAdd(&dKs[lane * ld + d], g * Qs[rr * ld + d]);
          atomicAdd(&dVs[lane * ld + d], pr * dOs[rr * ld + d]);
        }
      }
    }
  }
  if (FDA) atomicAdd(&colh[lane], my_colh);
  __syncthreads();
  for (int e = threadIdx.x; e < kTileK * D; e += blockDim.x) {
    const int jj = e / D, d = e % D;
    if (j0 + jj >= p.M) continue;
    const int64_t off = koff + static_cast<int64_t>(j0 + jj) * D + d;
    A dkval = dKs[jj * ld + d];
    if (FDA) dkval += A(2) * colh[jj] * Ks[jj * ld + d];
    bp.dk[off] = static_cast<scalar_t>(dkval);
    bp.dv[off] = static_cast<scalar_t>(dVs[jj * ld + d]);
  }
}

// Top-K backward: a warp per row over its saved indices; dK/dV through atomics. grid (ceil(B*H*N/4)).
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps* kWarp) topk_backward_kernel(BwdParams<scalar_t> bp) {
  const bool FDA = bp.f.alpha != nullptr;
  using A = typename Params<scalar_t>::acc_t;
  const Params<scalar_t>& p = bp.f;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= static_cast<int64_t>(p.B) * p.H * p.N) return;
  const int64_t bh = row / p.N;
  const int h = static_cast<int>(bh % p.H);
  const int D = p.D;
  const int64_t koff = bh * p.M * D;
  const FdaCoef<A> c = coef_of<scalar_t, A>(p, h);
  A qv[kChunks], dov[kChunks], acc[kChunks];
  A qn = 0;
#pragma unroll
  for (int cc = 0; cc < kChunks; ++cc) {
    const int d = lane + cc * kWarp;
    qv[cc] = d < D ? static_cast<A>(p.q[row * D + d]) : A(0);
    dov[cc] = d < D ? static_cast<A>(bp.dout[row * D + d]) : A(0);
    acc[cc] = 0;
    qn += qv[cc] * qv[cc];
  }
  if (FDA) qn = warp_sum(qn);
  const A li = p.lse[row], di = bp.di[row];
  const int32_t* irow = p.index + row * p.K;
  A ga = 0, gb = 0, gd = 0, rh = 0;
  for (int t = 0; t < p.K; ++t) {
    const int j = irow[t];
    if (j < 0 || j >= p.M) continue;  // padding (uniform across the warp)
    const scalar_t* kj = p.k + koff + static_cast<int64_t>(j) * D;
    const scalar_t* vj = p.v + koff + static_cast<int64_t>(j) * D;
    A kv[kChunks], qk = 0, dp = 0, kn = 0;
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) {
      const int d = lane + cc * kWarp;
      kv[cc] = d < D ? static_cast<A>(kj[d]) : A(0);
      qk += qv[cc] * kv[cc];
      dp += dov[cc] * (d < D ? static_cast<A>(vj[d]) : A(0));
      kn += kv[cc] * kv[cc];
    }
    qk = warp_sum(qk);
    dp = warp_sum(dp);
    if (FDA) kn = warp_sum(kn);
    A g, hterm, la = 0, lb = 0, lg = 0;
    const A pr = entry_grad<A>(FDA, qk, qn, kn, dp, li, di, p.scale, c, true, g, hterm, la, lb, lg);
    if (FDA) {
      ga += la;
      gb += lb;
      gd += lg;
      rh += hterm;
    }
    A* dkj = bp.dk_acc + koff + static_cast<int64_t>(j) * D;
    A* dvj = bp.dv_acc + koff + static_cast<int64_t>(j) * D;
#pragma unroll
    for (int cc = 0; cc < kChunks; ++cc) {
      const int d = lane + cc * kWarp;
      if (d < D) {
        acc[cc] += g * kv[cc];
        atomicAdd(dkj + d, g * qv[cc] + (FDA ? A(2) * hterm * kv[cc] : A(0)));
        atomicAdd(dvj + d, pr * dov[cc]);
      }
    }
  }
#pragma unroll
  for (int cc = 0; cc < kChunks; ++cc) {
    const int d = lane + cc * kWarp;
    if (d < D) bp.dq[row * D + d] = static_cast<scalar_t>(acc[cc] + (FDA ? A(2) * rh * qv[cc] : A(0)));
  }
  if (FDA && lane == 0) {
    atomicAdd(bp.dcoef + bh * 3 + 0, ga);
    atomicAdd(bp.dcoef + bh * 3 + 1, gb);
    atomicAdd(bp.dcoef + bh * 3 + 2, gd);
  }
}

// ------------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------------

void check_cuda(const at::Tensor& q, const Dims& d, const char* op) {
  TORCH_CHECK_VALUE(q.is_cuda(), op, ": expected CUDA tensors, got ", q.device());
  TORCH_CHECK_TYPE(q.scalar_type() == at::kFloat || q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16,
                   op, ": the CUDA kernels support float16, bfloat16 and float32, got ", q.scalar_type(),
                   " (float64: use the cpp or reference backend)");
  TORCH_CHECK_VALUE(d.D <= kMaxD, op, ": the CUDA kernels support head dims up to ", kMaxD, ", got D=", d.D);
  TORCH_CHECK_VALUE(d.B * d.H <= 65535, op, ": the CUDA kernels support B*H <= 65535, got ", d.B * d.H);
}

// coef [3, H] (checked by check_coef: accumulation dtype, q's device) as a contiguous tensor (undefined without FDA).
at::Tensor coef_tensor(const c10::optional<at::Tensor>& coef, bool fda) {
  return fda ? coef->detach().contiguous() : at::Tensor();
}

template <typename scalar_t>
Params<scalar_t> make_params(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Dims& d,
                             double scale, const at::Tensor& mask, const at::Tensor& coef, int64_t K) {
  using A = typename Acc<scalar_t>::type;
  Params<scalar_t> p{};
  p.q = q.data_ptr<scalar_t>();
  p.k = k.data_ptr<scalar_t>();
  p.v = v.data_ptr<scalar_t>();
  p.mask = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  if (coef.defined()) {  // rows alpha, beta, delta of coef [3, H]
    p.alpha = coef.data_ptr<A>();
    p.beta = p.alpha + d.H;
    p.delta = p.alpha + 2 * d.H;
  }
  p.B = static_cast<int>(d.B);
  p.H = static_cast<int>(d.H);
  p.N = static_cast<int>(d.N);
  p.M = static_cast<int>(d.M);
  p.D = static_cast<int>(d.D);
  p.K = static_cast<int>(K);
  p.scale = static_cast<A>(scale);
  return p;
}

template <typename Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
}

struct Fwd {
  at::Tensor out, lse, index, ce;
};

Fwd forward(const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_, double scale, int64_t topk,
            const c10::optional<at::Tensor>& mask_, const c10::optional<at::Tensor>& coef_, int64_t num_template,
            const at::Tensor& template_rows, const char* op) {
  const Dims d = check_qkv(q_, k_, v_, op);
  check_cuda(q_, d, op);
  check_mask(mask_, q_, d, op);
  const bool fda = check_coef(coef_, q_, d, op);
  TORCH_CHECK_VALUE(std::isfinite(scale), op, ": scale: expected a finite float, got ", scale);
  TORCH_CHECK_VALUE(topk == 0 || d.M <= kMaxTopkKeys, op, ": the CUDA top-K kernel supports M <= ", kMaxTopkKeys,
                    " keys, got M=", d.M);
  c10::cuda::CUDAGuard guard(q_.device());
  at::Tensor q = q_.contiguous(), k = k_.contiguous(), v = v_.contiguous();
  at::Tensor mask = (mask_.has_value() && mask_->defined()) ? mask_->contiguous() : at::Tensor();
  const at::Tensor coef = coef_tensor(coef_, fda);
  const int64_t K = topk > 0 ? index_width(topk, d.M) : 0;
  Fwd r;
  r.out = at::zeros_like(q);
  r.lse = at::full({d.B, d.H, d.N}, std::numeric_limits<double>::infinity(), q.options().dtype(acc_dtype(q)));
  r.index = at::full({d.B, d.H, d.N, K}, -1, q.options().dtype(at::kInt));
  const int64_t T = template_rows.defined() ? template_rows.numel() : 0;
  const int64_t Ls = num_template > 0 ? d.M - num_template : 0;
  r.ce = at::zeros({d.B, d.H, T, Ls}, q.options().dtype(acc_dtype(q)));
  if (d.B == 0 || d.H == 0 || d.N == 0 || d.M == 0 || d.D == 0) return r;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  VTRACK_DISPATCH_CUDA_TYPES(q.scalar_type(), "vtrack_cuda_forward", [&] {
    using A = typename Acc<scalar_t>::type;
    Params<scalar_t> p = make_params<scalar_t>(q, k, v, d, scale, mask, coef, K);
    p.out = r.out.data_ptr<scalar_t>();
    p.lse = r.lse.data_ptr<A>();
    p.index = K > 0 ? r.index.data_ptr<int32_t>() : nullptr;
    const int ld = p.D + 1;
    if (topk > 0) {
      const size_t smem = sizeof(A) * (kWarps * ld + kTileK * ld + kWarps + kTileK + size_t(kWarps) * p.M);
      TORCH_CHECK_VALUE(smem <= kMaxSmem, op, ": the CUDA top-K kernel keeps 4 rows of logits in shared memory; M=",
                        p.M, " needs ", smem, " bytes (max ", kMaxSmem, "); use float32/float16 or fewer keys");
      dim3 grid((p.N + kWarps - 1) / kWarps, p.B * p.H);
      set_smem(topk_forward_kernel<scalar_t>, smem);
      topk_forward_kernel<scalar_t><<<grid, kWarps * kWarp, smem, stream>>>(p);
    } else {
      const size_t smem = sizeof(A) * (kRowsPerBlock * ld + 2 * kTileK * ld + kRowsPerBlock + kTileK);
      dim3 grid((p.N + kRowsPerBlock - 1) / kRowsPerBlock, p.B * p.H);
      set_smem(dense_forward_kernel<scalar_t>, smem);
      dense_forward_kernel<scalar_t><<<grid, kWarps * kWarp, smem, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (T > 0 && Ls > 0) {
      dim3 grid(static_cast<unsigned>(T), p.B * p.H);
      const int64_t* rows = template_rows.data_ptr<int64_t>();
      A* ce = r.ce.data_ptr<A>();
      const int nt = static_cast<int>(num_template), tt = static_cast<int>(T);
      ce_probs_kernel<scalar_t><<<grid, kWarp, 0, stream>>>(p, topk > 0, rows, tt, nt, ce);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return r;
}

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;  // dq, dk, dv, dcoef [3, H]

Grads backward(const at::Tensor& grad_out, const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_,
               const at::Tensor& out, const at::Tensor& lse, const at::Tensor* index, double scale,
               const c10::optional<at::Tensor>& mask_, const c10::optional<at::Tensor>& coef_, const char* op) {
  const Dims d = check_qkv(q_, k_, v_, op);
  check_cuda(q_, d, op);
  check_saved(grad_out, q_, out, lse, d, op);
  check_mask(mask_, q_, d, op);
  const bool fda = check_coef(coef_, q_, d, op);
  if (index != nullptr) {
    check_index(*index, d, op);
    check_same_device(*index, q_, op, "index");
  }
  c10::cuda::CUDAGuard guard(q_.device());
  at::Tensor q = q_.contiguous(), k = k_.contiguous(), v = v_.contiguous();
  at::Tensor go = grad_out.contiguous(), o = out.contiguous(), l = lse.contiguous();
  at::Tensor idx = index != nullptr ? index->contiguous() : at::Tensor();
  at::Tensor mask = (mask_.has_value() && mask_->defined()) ? mask_->contiguous() : at::Tensor();
  const at::Tensor coef = coef_tensor(coef_, fda);
  const int64_t K = index != nullptr ? index->size(3) : 0;
  at::Tensor dq = at::zeros_like(q), dk = at::zeros_like(k), dv = at::zeros_like(v);
  at::Tensor dcoef = at::zeros({d.B, d.H, 3}, q.options().dtype(acc_dtype(q)));
  const bool work = d.B > 0 && d.H > 0 && d.N > 0 && d.M > 0 && d.D > 0 && (index == nullptr || K > 0);
  if (work) {
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    at::Tensor di = at::empty({d.B, d.H, d.N}, q.options().dtype(acc_dtype(q)));
    VTRACK_DISPATCH_CUDA_TYPES(q.scalar_type(), "vtrack_cuda_backward", [&] {
      using A = typename Acc<scalar_t>::type;
      const int64_t rows = d.B * d.H * d.N;
      row_dot_kernel<scalar_t><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * kWarp, 0, stream>>>(
          go.data_ptr<scalar_t>(), o.data_ptr<scalar_t>(), di.data_ptr<A>(), rows, static_cast<int>(d.D));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      BwdParams<scalar_t> bp{};
      bp.f = make_params<scalar_t>(q, k, v, d, scale, mask, coef, K);
      bp.f.lse = l.data_ptr<A>();
      bp.f.index = idx.defined() ? idx.data_ptr<int32_t>() : nullptr;
      bp.dout = go.data_ptr<scalar_t>();
      bp.di = di.data_ptr<A>();
      bp.dq = dq.data_ptr<scalar_t>();
      bp.dk = dk.data_ptr<scalar_t>();
      bp.dv = dv.data_ptr<scalar_t>();
      bp.dcoef = dcoef.data_ptr<A>();
      const int ld = static_cast<int>(d.D) + 1;
      if (index != nullptr) {
        at::Tensor dk_acc = at::zeros(k.sizes(), k.options().dtype(acc_dtype(q)));
        at::Tensor dv_acc = at::zeros(v.sizes(), v.options().dtype(acc_dtype(q)));
        bp.dk_acc = dk_acc.data_ptr<A>();
        bp.dv_acc = dv_acc.data_ptr<A>();
        const unsigned grid = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
        topk_backward_kernel<scalar_t><<<grid, kWarps * kWarp, 0, stream>>>(bp);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        dk.copy_(dk_acc);
        dv.copy_(dv_acc);
      } else {
        const size_t smem_dq = sizeof(A) * (2 * kRowsPerBlock * ld + 2 * kTileK * ld + kRowsPerBlock + kTileK);
        const size_t smem_dkv =
            sizeof(A) * (4 * kTileK * ld + 2 * kRowsPerBlock * ld + 2 * kTileK + kRowsPerBlock);
        dim3 grid_q(static_cast<unsigned>((d.N + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(d.B * d.H));
        dim3 grid_k(static_cast<unsigned>((d.M + kTileK - 1) / kTileK), static_cast<unsigned>(d.B * d.H));
        set_smem(dense_dq_kernel<scalar_t>, smem_dq);
        set_smem(dense_dkv_kernel<scalar_t>, smem_dkv);
        dense_dq_kernel<scalar_t><<<grid_q, kWarps * kWarp, smem_dq, stream>>>(bp);
        dense_dkv_kernel<scalar_t><<<grid_k, kWarps * kWarp, smem_dkv, stream>>>(bp);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  return {dq, dk, dv, fda_coef_grad(dcoef, coef_, q)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> topk_attention_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t topk, double scale,
    const c10::optional<at::Tensor>& mask, const c10::optional<at::Tensor>& coef) {
  TORCH_CHECK_VALUE(topk >= 1, "vtrack::topk_attention: topk: expected an int >= 1, got ", topk);
  Fwd r = forward(q, k, v, scale, topk, mask, coef, 0, at::Tensor(), "vtrack::topk_attention");
  return {r.out, r.lse, r.index};
}

Grads topk_attention_backward_cuda(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k,
                                   const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
                                   const at::Tensor& index, double scale, const c10::optional<at::Tensor>& coef) {
  return backward(grad_out, q, k, v, out, lse, &index, scale, c10::nullopt, coef, "vtrack::topk_attention_backward");
}

std::tuple<at::Tensor, at::Tensor> fda_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                      double scale, const c10::optional<at::Tensor>& mask,
                                                      const c10::optional<at::Tensor>& coef) {
  Fwd r = forward(q, k, v, scale, 0, mask, coef, 0, at::Tensor(), "vtrack::fda_attention");
  return {r.out, r.lse};
}

Grads fda_attention_backward_cuda(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse, double scale,
                                  const c10::optional<at::Tensor>& mask, const c10::optional<at::Tensor>& coef) {
  return backward(grad_out, q, k, v, out, lse, nullptr, scale, mask, coef, "vtrack::fda_attention_backward");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> ce_attention_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t num_template, int64_t keep,
    const at::Tensor& template_index, double scale, int64_t topk, const c10::optional<at::Tensor>& mask,
    const c10::optional<at::Tensor>& coef) {
  const char* op = "vtrack::ce_attention";
  const Dims d = check_qkv(q, k, v, op);
  check_ce(q, d, num_template, keep, template_index, topk, op);
  Fwd r = forward(q, k, v, scale, topk, mask, coef, num_template, template_index.contiguous(), op);
  auto res = ce_score_from_probs(r.ce, keep);
  return {r.out, r.lse, r.index, std::get<0>(res), std::get<1>(res)};
}

}  // namespace
}  // namespace cuda
}  // namespace vtrack

TORCH_LIBRARY_IMPL(vtrack, CUDA, m) {
  m.impl("topk_attention", &vtrack::cuda::topk_attention_cuda);
  m.impl("topk_attention_backward", &vtrack::cuda::topk_attention_backward_cuda);
  m.impl("fda_attention", &vtrack::cuda::fda_attention_cuda);
  m.impl("fda_attention_backward", &vtrack::cuda::fda_attention_backward_cuda);
  m.impl("ce_attention", &vtrack::cuda::ce_attention_cuda);
}
