// The CPU attention engine (float32 and float64), compiled once per ISA: included only by the
// isa_*.cpp translation units, after every header and after the target ISA was switched, with
// VTRACK_ISA_NS (the namespace: avx512, avx2, baseline) and VTRACK_ISA_AVX512 (1 when AVX-512F/BW/VL/DQ
// intrinsics may be used) defined. Everything here is in an anonymous namespace of its ISA namespace,
// so the copies never meet at link time.
//
// One parameterised engine serves every op: flags select top-K selection, the FDA bias and the CE
// centre-row output. Work is split with at::parallel_for (ATen's OpenMP backend in the official
// builds; it shares torch's thread pool and torch.set_num_threads) over (batch, head, query block)
// in the forward and over (batch, head) in the backward (dk/dv of a head are owned by one thread).
// `#pragma omp simd` marks the vectorised loops. Per thread only
// O(BQ * M) scratch is used (BQ = query block rows): no [N, M] buffer is ever allocated. The forward
// saves the row log-sum-exp and, for top-K, the kept key indices of each row; the backward
// recomputes the logits from them.
//
// Dense block products (Q K^T, P V, ...) use the BLAS that libtorch exports (sgemm_/dgemm_, weakly
// bound: MKL or OpenBLAS in the official wheels) and a portable vectorised loop nest otherwise
// (or when VTRACK_CPU_BLAS=0). Elementwise loops are written for the compiler's vectoriser
// (`#pragma omp simd`, a branch-free exp for float32).
#ifndef VTRACK_ISA_NS
#error "engine_impl.h is included by csrc/cpu/isa_*.cpp only"
#endif
#ifndef VTRACK_ISA_BF16
#define VTRACK_ISA_BF16 0  // 1: AVX512-BF16 (vdpbf16ps); this translation unit exports the bf16 forward and backward only
#endif

namespace vtrack {
namespace cpu {
namespace VTRACK_ISA_NS {
namespace {

constexpr int64_t kBlockQ = 32;   // query rows per forward task
constexpr int64_t kBlockQB = 64;  // query rows per backward block (larger inner dim for dK/dV products)

// ---------------------------------------------------------------------------------------------
// Math helpers
// ---------------------------------------------------------------------------------------------

// exp for float32 without branches (Cephes polynomial, ~1 ulp); exactly 0 below -87.3 (so -inf -> 0).
inline float fast_exp(float x) {
  const float xc = std::min(std::max(x, -87.3f), 88.7f);
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  const float y = p * two_n;
  return x < -87.3f ? 0.0f : (x != x ? x : y);
}
inline double fast_exp(double x) { return std::exp(x); }

// exp for the bfloat16 kernels (VTRACK_ISA_BF16): 2^t, t = x log2(e), as 2^round(t) times a degree-4 polynomial
// for 2^f on [-1/2, 1/2] (minimax, relative error 2.7e-6; with the rounding of t at most ~1e-5 = 2^-16.6 in the
// softmax range, 2^7.6 below bfloat16's half step 2^-9). About a quarter fewer vector instructions than fast_exp
// (no Cody-Waite reduction, two polynomial terms fewer); exactly 0 below -87.3, NaN stays NaN, like fast_exp.
// float32 and float64 results never use it. exp_ps is its 16-lane form (the same polynomial and clamps).
inline float fast_exp_bf16(float x) {
  const float t = std::min(std::max(x * 1.44269504088896341f, -126.0f), 127.0f);
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = 9.571148083e-03f;
  p = p * f + 5.591795594e-02f;
  p = p * f + 2.402471900e-01f;
  p = p * f + 6.931217909e-01f;
  p = p * f + 9.999992847e-01f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  const float y = p * two_n;
  return x < -87.3f ? 0.0f : (x != x ? x : y);
}

// The engine's exp: fast_exp_bf16 in the bfloat16 kernels (BF), else fast_exp.
template <bool BF, typename T>
inline T exp_of(T x) {
  if constexpr (BF && std::is_same<T, float>::value) return fast_exp_bf16(x);
  else return fast_exp(x);
}

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

bool blas_enabled() {
#ifdef VTRACK_HAVE_WEAK_BLAS
  const char* env = std::getenv("VTRACK_CPU_BLAS");
  if (env != nullptr && (std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0)) return false;
  return sgemm_ != nullptr && dgemm_ != nullptr;
#else
  return false;
#endif
}

// Row-major C[m,n] = op(A)[m,k] * op(B)[k,n] + beta * C  (beta is 0 or 1). `tmp` is scratch for the
// portable path (k*n elements when tb).
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc, bool use_blas, std::vector<T>& tmp) {
  if (m == 0 || n == 0) return;
#ifdef VTRACK_HAVE_WEAK_BLAS
  if (use_blas) {
    // Column-major BLAS on row-major data: C^T = op(B)^T op(A)^T.
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
    const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb), ildc = static_cast<int>(ldc);
    const char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
    const T one = 1;
    if constexpr (std::is_same<T, float>::value) {
      sgemm_(&ctb, &cta, &in, &im, &ik, &one, B, &ildb, A, &ilda, &beta, C, &ildc);
    } else {
      dgemm_(&ctb, &cta, &in, &im, &ik, &one, B, &ildb, A, &ilda, &beta, C, &ildc);
    }
    return;
  }
#endif
  if (beta == T(0)) {
    for (int64_t i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, T(0));
  }
  if (tb) {  // transpose B [n,k] into tmp [k,n] and fall through to the NN loop
    tmp.resize(static_cast<size_t>(k * n));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) tmp[p * n + j] = B[j * ldb + p];
    B = tmp.data();
    ldb = n;
  }
  for (int64_t i = 0; i < m; ++i) {
    T* __restrict__ c = C + i * ldc;
    for (int64_t p = 0; p < k; ++p) {
      const T a = ta ? A[p * lda + i] : A[i * lda + p];
      const T* __restrict__ b = B + p * ldb;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) c[j] += a * b[j];
    }
  }
}

template <typename T>
inline T dot(const T* __restrict__ a, const T* __restrict__ b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <typename T>
inline void axpy(T a, const T* __restrict__ x, T* __restrict__ y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// o[0:D] = sum_t w[t] * V[idx[t], 0:D]: the sparse P.V of one top-K row. The output is accumulated in
// vector registers (GCC/Clang vector extensions, 64 bytes: one AVX-512 register, two AVX2 or four SSE
// registers) instead of memory, which would chain every key's FMAs through a store and a reload.
template <typename T>
void gather_pv(const T* __restrict__ w, const int32_t* __restrict__ idx, int64_t n, const T* __restrict__ V,
               int64_t D, T* __restrict__ o) {
  typedef T vec __attribute__((vector_size(64)));
  constexpr int64_t L = 64 / sizeof(T);
  // Even and odd keys go to separate accumulators: two independent FMA chains per output vector
  // (one chain of K FMAs is bound by the FMA latency, not its throughput).
  int64_t x0 = 0;
  for (; x0 + 2 * L <= D; x0 += 2 * L) {
    vec a0 = {}, a1 = {}, b0 = {}, b1 = {};
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
      const T* vr = V + int64_t(idx[t]) * D + x0;
      const T* vs = V + int64_t(idx[t + 1]) * D + x0;
      vec v0, v1, u0, u1;
      std::memcpy(&v0, vr, sizeof(v0));
      std::memcpy(&v1, vr + L, sizeof(v1));
      std::memcpy(&u0, vs, sizeof(u0));
      std::memcpy(&u1, vs + L, sizeof(u1));
      a0 += w[t] * v0;
      a1 += w[t] * v1;
      b0 += w[t + 1] * u0;
      b1 += w[t + 1] * u1;
    }
    if (t < n) {
      const T* vr = V + int64_t(idx[t]) * D + x0;
      vec v0, v1;
      std::memcpy(&v0, vr, sizeof(v0));
      std::memcpy(&v1, vr + L, sizeof(v1));
      a0 += w[t] * v0;
      a1 += w[t] * v1;
    }
    a0 += b0;
    a1 += b1;
    std::memcpy(o + x0, &a0, sizeof(a0));
    std::memcpy(o + x0 + L, &a1, sizeof(a1));
  }
  for (; x0 + L <= D; x0 += L) {
    vec a0 = {}, b0 = {};
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
      vec v0, u0;
      std::memcpy(&v0, V + int64_t(idx[t]) * D + x0, sizeof(v0));
      std::memcpy(&u0, V + int64_t(idx[t + 1]) * D + x0, sizeof(u0));
      a0 += w[t] * v0;
      b0 += w[t + 1] * u0;
    }
    if (t < n) {
      vec v0;
      std::memcpy(&v0, V + int64_t(idx[t]) * D + x0, sizeof(v0));
      a0 += w[t] * v0;
    }
    a0 += b0;
    std::memcpy(o + x0, &a0, sizeof(a0));
  }
  if (x0 < D) {
    std::fill(o + x0, o + D, T(0));
    for (int64_t t = 0; t < n; ++t) axpy(w[t], V + int64_t(idx[t]) * D + x0, o + x0, D - x0);
  }
}


// ---------------------------------------------------------------------------------------------
// Register-tiled block products of the float32 forward (the GEMM micro-kernel pattern), written with
// GCC/Clang vector extensions of VTRACK_VEC_BYTES (the ISA's register width), so that each ISA
// translation unit gets tiles sized for its register file. For the attention shapes (D = 32..128,
// a 32-row query block) they beat a BLAS call per block, whose packing and call overhead dominate
// at these sizes; K^T is packed once per (batch, head) and reused by all query blocks of a thread.
// ---------------------------------------------------------------------------------------------

typedef float vfloat __attribute__((vector_size(VTRACK_VEC_BYTES)));
constexpr int64_t kVL = VTRACK_VEC_BYTES / 4;             // floats per vector
constexpr int64_t kAcc = VTRACK_VEC_BYTES == 64 ? 24 : 12;  // accumulator registers per tile
constexpr int64_t kQR = VTRACK_VEC_BYTES == 64 ? 8 : 4;     // Q.K^T tile: query rows ...
constexpr int64_t kQV = 3;                                   // ... x vectors of keys

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

inline vfloat vload(const float* p) {
  vfloat x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

inline void vstore(float* p, vfloat x) { std::memcpy(p, &x, sizeof(x)); }

#if VTRACK_ISA_AVX512
// ---------------------------------------------------------------------------------------------
// Explicit AVX-512 row passes of the float32 forward. GCC vectorises the plain loops too, but leaves
// a scalar remainder of up to 15 keys per row (M = 361: 9 scalar exps per row, about a sixth of the
// row's exp time) and re-checks its masks inside the loop; here the remainder is one masked vector.
// ---------------------------------------------------------------------------------------------

inline __mmask16 tail_mask16(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << n) - 1u);
}

// fast_exp on 16 lanes: the same clamps, Cody-Waite reduction and Cephes polynomial (~1 ulp), exactly 0
// below -87.3, NaN stays NaN.
inline __m512 exp16_f32(__m512 x) {
  const __m512 xc = _mm512_maskz_min_ps(0xffff, _mm512_maskz_max_ps(0xffff, x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_maskz_roundscale_ps(0xffff, _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_maskz_slli_epi32(0xffff, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xffff, n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// Horizontal sum / maximum of 16 lanes (through memory: GCC 12 warns about the reduce intrinsics' undefined
// sources, as about every unmasked shuffle, hence the masked forms below).
inline float hsum16(__m512 x) {
  alignas(64) float l[16];
  _mm512_store_ps(l, x);
  float s = 0;
  for (int i = 0; i < 16; ++i) s += l[i];
  return s;
}
inline float hmax16(__m512 x) {
  alignas(64) float l[16];
  _mm512_store_ps(l, x);
  float m = l[0];
  for (int i = 1; i < 16; ++i) m = std::max(m, l[i]);
  return m;
}

// s[j] = exp(s[j] - mx) for j < M (the softmax numerators of a finished dense row); returns their sum.
inline float exp_sum_row_f32(float* __restrict__ s, int64_t M, float mx) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= M; j += 32) {
    const __m512 e0 = exp16_f32(_mm512_sub_ps(_mm512_loadu_ps(s + j), vm));
    const __m512 e1 = exp16_f32(_mm512_sub_ps(_mm512_loadu_ps(s + j + 16), vm));
    _mm512_storeu_ps(s + j, e0);
    _mm512_storeu_ps(s + j + 16, e1);
    acc0 = _mm512_add_ps(acc0, e0);
    acc1 = _mm512_add_ps(acc1, e1);
  }
  for (; j < M; j += 16) {
    const __mmask16 m = tail_mask16(M - j);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16_f32(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), vm)));
    _mm512_mask_storeu_ps(s + j, m, e);
    acc0 = _mm512_add_ps(acc0, e);
  }
  return hsum16(_mm512_add_ps(acc0, acc1));
}

// x = s[j] * sc, masked keys (mrow[j] != 0, mrow may be null) -inf, stored back; returns the row maximum and
// sets `nan` when a logit is NaN. The dense, non-FDA rows' finish_logits.
inline float scale_max_row_f32(float* __restrict__ s, const float* __restrict__ mrow, int64_t M, float sc, bool& nan) {
  const __m512 vs = _mm512_set1_ps(sc), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 mx = ninf;
  __mmask16 bad = 0;
  for (int64_t j = 0; j < M; j += 16) {
    const __mmask16 m = tail_mask16(M - j);
    __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), vs);
    bad |= _mm512_mask_cmp_ps_mask(m, x, x, _CMP_UNORD_Q);
    if (mrow != nullptr)
      x = _mm512_mask_mov_ps(x, _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, mrow + j), _mm512_setzero_ps(), _CMP_NEQ_UQ), ninf);
    _mm512_mask_storeu_ps(s + j, m, x);
    mx = _mm512_mask_max_ps(mx, m, mx, x);
  }
  nan = bad != 0;
  return hmax16(mx);
}

// The FDA logits of one dense row without a mask, in place (fda_logits_max's float32 form): x = qk * sc +
// (a * exp(-dl * d2) - b * dl * d2) with d2 = max(|q|^2 + |k_j|^2 - 2 qk, 0); returns the row maximum (NaN
// logits do not enter it, as in the scalar form).
inline float fda_logits_max_f32(const float* __restrict__ kn, float* __restrict__ s, int64_t M, float qn, float sc,
                                float a, float b, float dl) {
  const __m512 vqn = _mm512_set1_ps(qn), vsc = _mm512_set1_ps(sc), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  const __m512 vdl = _mm512_set1_ps(dl), two = _mm512_set1_ps(2.0f);
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < M; j += 16) {
    const __mmask16 m = tail_mask16(M - j);
    const __m512 qk = _mm512_maskz_loadu_ps(m, s + j);
    const __m512 d2 = _mm512_maskz_max_ps(0xffff, _mm512_fnmadd_ps(two, qk, _mm512_add_ps(vqn, _mm512_maskz_loadu_ps(m, kn + j))),
                                          _mm512_setzero_ps());
    const __m512 rep = _mm512_mul_ps(vdl, d2);
    const __m512 e = exp16_f32(_mm512_sub_ps(_mm512_setzero_ps(), rep));
    const __m512 x = _mm512_fmadd_ps(qk, vsc, _mm512_fmsub_ps(va, e, _mm512_mul_ps(vb, rep)));
    _mm512_mask_storeu_ps(s + j, m, x);
    mx = _mm512_mask_max_ps(mx, m, x, mx);  // max(x, mx): a NaN x leaves mx
  }
  return hmax16(mx);
}

// Transposes the 16 x 16 block rows[r][0:16] (r < 16) into cols[c][0:16] = rows[0:16][c] in registers
// (unpack, then 128-bit lane shuffles): about 4 shuffles per output vector instead of one 16-lane gather.
inline void transpose16x16_store(const __m512 (&r)[16], float* __restrict__ dst, int64_t ld) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(0xffff, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xff, a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xff, a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xff, b, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xff, b, d));
  }
  // u[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k.
  for (int k = 0; k < 4; ++k) {
    const __m512 v = _mm512_maskz_shuffle_f32x4(0xffff, u[k], u[4 + k], 0x88), w = _mm512_maskz_shuffle_f32x4(0xffff, u[k], u[4 + k], 0xDD);
    const __m512 x = _mm512_maskz_shuffle_f32x4(0xffff, u[8 + k], u[12 + k], 0x88), y = _mm512_maskz_shuffle_f32x4(0xffff, u[8 + k], u[12 + k], 0xDD);
    _mm512_storeu_ps(dst + (0 + k) * ld, _mm512_maskz_shuffle_f32x4(0xffff, v, x, 0x88));
    _mm512_storeu_ps(dst + (8 + k) * ld, _mm512_maskz_shuffle_f32x4(0xffff, v, x, 0xDD));
    _mm512_storeu_ps(dst + (4 + k) * ld, _mm512_maskz_shuffle_f32x4(0xffff, w, y, 0x88));
    _mm512_storeu_ps(dst + (12 + k) * ld, _mm512_maskz_shuffle_f32x4(0xffff, w, y, 0xDD));
  }
}
#endif

// Y[c][r] = X[r][c] for r < rows, c < cols (X and Y row-major with row strides ldx, ldy): whole 16 x 16 blocks
// transposed in registers on AVX-512, the rest element by element. Used by pack_kt and by the AMX backward's dK, dV.
[[maybe_unused]] void transpose_f32(const float* __restrict__ X, int64_t ldx, int64_t rows, int64_t cols,
                                    float* __restrict__ Y, int64_t ldy) {
  int64_t c0 = 0;
#if VTRACK_ISA_AVX512
  const int64_t R16 = rows / 16 * 16;
  for (; c0 + 16 <= cols; c0 += 16) {
    for (int64_t r = 0; r < R16; r += 16) {
      __m512 blk[16];
      for (int i = 0; i < 16; ++i) blk[i] = _mm512_loadu_ps(X + (r + i) * ldx + c0);
      transpose16x16_store(blk, Y + c0 * ldy + r, ldy);
    }
    for (int64_t c = c0; c < c0 + 16; ++c)
      for (int64_t r = R16; r < rows; ++r) Y[c * ldy + r] = X[r * ldx + c];
  }
#endif
  for (int64_t c = c0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) Y[c * ldy + r] = X[r * ldx + c];
}

// KT[d][j] = K[j][d] for j < M, 0 for M <= j < Mp (Mp a multiple of kVL * kQV).
[[maybe_unused]] void pack_kt(const float* __restrict__ K, int64_t M, int64_t D, int64_t Mp, float* __restrict__ KT) {
  transpose_f32(K, D, M, D, KT, Mp);
  for (int64_t d = 0; d < D; ++d) std::fill(KT + d * Mp + M, KT + (d + 1) * Mp, 0.0f);
}

// S[r][0:Mp] = Q[r] . KT (r < nr; S has row stride ldS >= Mp).
[[maybe_unused]] void qk_tiles(const float* __restrict__ Q, int64_t nr, int64_t D, const float* __restrict__ KT, int64_t Mp,
              float* __restrict__ S, int64_t ldS) {
  for (int64_t r0 = 0; r0 < nr; r0 += kQR) {
    const float* qrow[kQR];
    for (int64_t r = 0; r < kQR; ++r) qrow[r] = Q + std::min(r0 + r, nr - 1) * D;  // clamped: extra rows not stored
    for (int64_t j0 = 0; j0 < Mp; j0 += kVL * kQV) {
      vfloat acc[kQR][kQV];
#pragma GCC unroll 8
      for (int64_t r = 0; r < kQR; ++r)
#pragma GCC unroll 3
        for (int64_t v = 0; v < kQV; ++v) acc[r][v] = vfloat{} ;
      const float* kt = KT + j0;
      for (int64_t d = 0; d < D; ++d, kt += Mp) {
        const vfloat b0 = vload(kt), b1 = vload(kt + kVL), b2 = vload(kt + 2 * kVL);
#pragma GCC unroll 8
        for (int64_t r = 0; r < kQR; ++r) {
          const float a = qrow[r][d];
          acc[r][0] += a * b0;
          acc[r][1] += a * b1;
          acc[r][2] += a * b2;
        }
      }
      const int64_t rr = std::min(kQR, nr - r0);
#pragma GCC unroll 8
      for (int64_t r = 0; r < kQR; ++r) {
        if (r >= rr) break;
        float* srow = S + (r0 + r) * ldS + j0;
        vstore(srow, acc[r][0]);
        vstore(srow + kVL, acc[r][1]);
        vstore(srow + 2 * kVL, acc[r][2]);
      }
    }
  }
}

// O[r][x0 : x0 + NV*kVL] = f[r] * sum_j P[r][j] V[j][x0 : ...] for R rows starting at r0 (clamped).
template <int64_t R, int64_t NV>
void pv_micro(const float* __restrict__ P, int64_t ldP, int64_t r0, int64_t nr, int64_t M,
              const float* __restrict__ V, int64_t D, int64_t x0, const float* __restrict__ f, float* __restrict__ O) {
  const float* prow[R];
  for (int64_t r = 0; r < R; ++r) prow[r] = P + std::min(r0 + r, nr - 1) * ldP;
  vfloat acc[R][NV];
#pragma GCC unroll 24
  for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) acc[r][v] = vfloat{};
  const float* vp = V + x0;
  for (int64_t j = 0; j < M; ++j, vp += D) {
    vfloat b[NV];
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) b[v] = vload(vp + v * kVL);
#pragma GCC unroll 24
    for (int64_t r = 0; r < R; ++r) {
      const float a = prow[r][j];
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  const int64_t rr = std::min(R, nr - r0);
#pragma GCC unroll 24
  for (int64_t r = 0; r < R; ++r) {
    if (r >= rr) break;
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) vstore(O + (r0 + r) * D + x0 + v * kVL, acc[r][v] * f[r0 + r]);
  }
}

constexpr int64_t pow2_floor(int64_t x) { return x >= 2 ? 2 * pow2_floor(x / 2) : 1; }

// O[r] = f[r] * P[r] . V for r < nr (P row stride ldP, V [M][D] row-major); needs D % kVL == 0.
// Rows per micro-tile: a power of two (so that the 32/64-row query blocks split without clamped,
// recomputed rows: 6 or 12 rows per tile computed 36 rows for 32, 12.5% extra FMAs).
[[maybe_unused]] void pv_tiles(const float* __restrict__ P, int64_t ldP, int64_t nr, int64_t M, const float* __restrict__ V,
              int64_t D, const float* __restrict__ f, float* __restrict__ O) {
  constexpr int64_t R4 = pow2_floor(kAcc / 4), R3 = pow2_floor(kAcc / 3), R2 = pow2_floor(kAcc / 2);
  for (int64_t x0 = 0; x0 < D;) {
    const int64_t nv = std::min<int64_t>(4, (D - x0) / kVL);
    for (int64_t r0 = 0; r0 < nr;) {
      switch (nv) {
        case 4: pv_micro<R4, 4>(P, ldP, r0, nr, M, V, D, x0, f, O); r0 += R4; break;
        case 3: pv_micro<R3, 3>(P, ldP, r0, nr, M, V, D, x0, f, O); r0 += R3; break;
        case 2: pv_micro<R2, 2>(P, ldP, r0, nr, M, V, D, x0, f, O); r0 += R2; break;
        default: pv_micro<R2, 1>(P, ldP, r0, nr, M, V, D, x0, f, O); r0 += R2; break;
      }
    }
    x0 += nv * kVL;
  }
}

#if VTRACK_ISA_BF16
// ---------------------------------------------------------------------------------------------
// bfloat16 block products (AVX512-BF16): vdpbf16ps multiplies pairs of bf16 values and adds both
// products to a float32 lane (exactly: a bf16 product is exact in float32), so the operands are packed
// pair-interleaved, each pair one 32-bit element: for Q.K^T the pairs run along the head dim
// (KT2[d2][j] = K[j][2 d2] | K[j][2 d2 + 1] << 16, a 32-bit transpose of K), for P.V along the keys
// (VP[j2][x] = V[2 j2][x] | V[2 j2 + 1][x] << 16, consecutive rows of V interleaved); an odd head dim or
// key count is padded with a zero. The register tiles are those of the float32 path.
// ---------------------------------------------------------------------------------------------

inline float bf16_to_float(uint16_t x) {
  const uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint32_t load_u32(const uint16_t* p) {
  uint32_t u;
  std::memcpy(&u, p, sizeof(u));
  return u;
}

inline __m512bh as_bh(__m512i x) { return reinterpret_cast<__m512bh&>(x); }

// sum_x a[x]^2 of a bf16 row, in float32.
inline float sqnorm_bf16(const uint16_t* __restrict__ a, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float x = bf16_to_float(a[i]);
    s += x * x;
  }
  return s;
}

// The pair of head dims (2 d2, 2 d2 + 1) of a bf16 row of length D (0 past D).
inline uint32_t pair_of(const uint16_t* row, int64_t D, int64_t d2) {
  if (2 * d2 + 1 < D) return load_u32(row + 2 * d2);
  return row[2 * d2];
}

// KT2[d2][j] = pair d2 of K[j] for j < M, 0 for M <= j < Mp (D2 = ceil(D/2) pair rows).
void pack_kt_bf16(const uint16_t* __restrict__ K, int64_t M, int64_t D, int64_t Mp, uint32_t* __restrict__ KT2) {
  const int64_t D2 = (D + 1) / 2;
  for (int64_t d2 = 0; d2 < D2; ++d2) {
    uint32_t* __restrict__ row = KT2 + d2 * Mp;
    int64_t j = 0;
    if (D % 2 == 0 && D <= (int64_t(1) << 26)) {  // 16 keys per gather of 32-bit pairs (offsets j*D/2 fit in int32)
      const __m512i off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int32_t>(D / 2)));
      for (; j + 16 <= M; j += 16)
        _mm512_storeu_si512(reinterpret_cast<void*>(row + j),
                            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xffff, off, K + j * D + 2 * d2, 4));
    }
    for (; j < M; ++j) row[j] = pair_of(K + j * D, D, d2);
    std::fill(row + M, row + Mp, 0u);
  }
}

// Qb[r][d2] = pair d2 of Q[r] (r < nr), rows of stride ldq pairs (ldq <= 0: D2 = ceil(D/2); the pairs past D2
// of a longer stride are left as they are).
void pack_q_bf16(const uint16_t* __restrict__ Q, int64_t nr, int64_t D, uint32_t* __restrict__ Qb, int64_t ldq = 0) {
  const int64_t D2 = (D + 1) / 2;
  if (ldq <= 0) ldq = D2;
  for (int64_t r = 0; r < nr; ++r) {
    if (D % 2 == 0) {
      std::memcpy(Qb + r * ldq, Q + r * D, static_cast<size_t>(D) * sizeof(uint16_t));
    } else {
      for (int64_t d2 = 0; d2 < D2; ++d2) Qb[r * ldq + d2] = pair_of(Q + r * D, D, d2);
    }
  }
}

// VP[j2][x] = V[2 j2][x] | V[2 j2 + 1][x] << 16 for j2 < ceil(M/2) (the missing row of an odd M is 0).
void pack_v_bf16(const uint16_t* __restrict__ V, int64_t M, int64_t D, uint32_t* __restrict__ VP) {
  for (int64_t j2 = 0; 2 * j2 < M; ++j2) {
    const uint16_t* lo = V + 2 * j2 * D;
    const uint16_t* hi = 2 * j2 + 1 < M ? lo + D : nullptr;
    uint32_t* __restrict__ dst = VP + j2 * D;
    int64_t x = 0;
    // (the masked forms: GCC 12 warns about the unmasked ones' undefined source)
    for (; x + 16 <= D; x += 16) {
      const __m256i l16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + x));
      const __m512i a = _mm512_maskz_cvtepu16_epi32(0xffff, l16);
      __m512i b = _mm512_setzero_si512();
      if (hi != nullptr)
        b = _mm512_maskz_slli_epi32(
            0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + x))), 16);
      _mm512_storeu_si512(reinterpret_cast<void*>(dst + x), _mm512_or_si512(a, b));
    }
    for (; x < D; ++x) dst[x] = uint32_t(lo[x]) | (hi != nullptr ? uint32_t(hi[x]) << 16 : 0u);
  }
}

// P2[r][j2] = the bf16 pair (s[2 j2], s[2 j2 + 1]) of the float32 row r of S, rounded to nearest even
// (what a same-precision program's cast of the probabilities does); s[M] of an odd M reads as 0.
void round_rows_bf16(const float* __restrict__ S, int64_t ldS, int64_t nr, int64_t M, uint32_t* __restrict__ P2,
                     int64_t ldP2) {
  for (int64_t r = 0; r < nr; ++r) {
    const float* s = S + r * ldS;
    uint32_t* dst = P2 + r * ldP2;
    for (int64_t j = 0; j < M; j += 32) {
      const int64_t n = std::min<int64_t>(32, M - j);
      const __mmask16 m0 = tail_mask16(n);
      const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1u : 0u);
      const __m512 a = _mm512_maskz_loadu_ps(m0, s + j), b = _mm512_maskz_loadu_ps(m1, s + j + 16);
      const __m512bh p = _mm512_cvtne2ps_pbh(b, a);  // bf16 lanes 0..15 from a, 16..31 from b
      const int64_t n2 = (n + 1) / 2;
      _mm512_mask_storeu_epi32(dst + j / 2, tail_mask16(n2),
                               reinterpret_cast<const __m512i&>(p));
    }
  }
}

// fast_exp_bf16 on 16 lanes (the same polynomial and clamps; exactly 0 below -87.3, NaN stays NaN).
inline __m512 exp_ps(__m512 x) {
  // (the masked forms throughout: GCC 12 warns about the unmasked ones' undefined source)
  const __m512 t = _mm512_maskz_min_ps(
      0xffff, _mm512_maskz_max_ps(0xffff, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _mm512_set1_ps(-126.0f)),
      _mm512_set1_ps(127.0f));
  const __m512 n = _mm512_maskz_roundscale_ps(0xffff, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(9.571148083e-03f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.591795594e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402471900e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931217909e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999992847e-01f));
  const __m512i e =
      _mm512_maskz_slli_epi32(0xffff, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xffff, n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// The softmax numerators of one finished dense row, rounded to bf16 pairs straight into P2 (no float32 store
// and no second pass): P2[j/2] = bf16(exp(s[j] - mx)), bf16(exp(s[j+1] - mx)); returns their float32 sum.
inline float exp_round_row_bf16(const float* __restrict__ s, int64_t M, float mx, uint32_t* __restrict__ P2) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < M; j += 32) {
    const int64_t n = std::min<int64_t>(32, M - j);
    const __mmask16 m0 = tail_mask16(n);
    const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1u : 0u);
    const __m512 e0 = _mm512_maskz_mov_ps(m0, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m0, s + j), vm)));
    const __m512 e1 = _mm512_maskz_mov_ps(m1, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m1, s + j + 16), vm)));
    acc = _mm512_add_ps(acc, _mm512_add_ps(e0, e1));
    const __m512bh p = _mm512_cvtne2ps_pbh(e1, e0);
    const int64_t n2 = (n + 1) / 2;
    _mm512_mask_storeu_epi32(P2 + j / 2, tail_mask16(n2),
                             reinterpret_cast<const __m512i&>(p));
  }
  return hsum16(acc);
}

constexpr int64_t kBVL = 16;  // float32 lanes of a vdpbf16ps result

// S[r][0:Mp] = Q[r] . K^T from the packed pairs (r < nr; S row stride ldS >= Mp).
void qk_tiles_bf16(const uint32_t* __restrict__ Qb, int64_t nr, int64_t D2, const uint32_t* __restrict__ KT2,
                   int64_t Mp, float* __restrict__ S, int64_t ldS) {
  for (int64_t r0 = 0; r0 < nr; r0 += kQR) {
    const uint32_t* qrow[kQR];
    for (int64_t r = 0; r < kQR; ++r) qrow[r] = Qb + std::min(r0 + r, nr - 1) * D2;  // clamped: extra rows not stored
    for (int64_t j0 = 0; j0 < Mp; j0 += kBVL * kQV) {
      __m512 acc[kQR][kQV];
#pragma GCC unroll 8
      for (int64_t r = 0; r < kQR; ++r)
#pragma GCC unroll 3
        for (int64_t v = 0; v < kQV; ++v) acc[r][v] = _mm512_setzero_ps();
      const uint32_t* kt = KT2 + j0;
      for (int64_t d2 = 0; d2 < D2; ++d2, kt += Mp) {
        const __m512bh b0 = as_bh(_mm512_loadu_si512(kt)), b1 = as_bh(_mm512_loadu_si512(kt + kBVL)),
                       b2 = as_bh(_mm512_loadu_si512(kt + 2 * kBVL));
#pragma GCC unroll 8
        for (int64_t r = 0; r < kQR; ++r) {
          const __m512bh a = as_bh(_mm512_set1_epi32(static_cast<int32_t>(qrow[r][d2])));
          acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
          acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
          acc[r][2] = _mm512_dpbf16_ps(acc[r][2], a, b2);
        }
      }
      const int64_t rr = std::min(kQR, nr - r0);
#pragma GCC unroll 8
      for (int64_t r = 0; r < kQR; ++r) {
        if (r >= rr) break;
        float* srow = S + (r0 + r) * ldS + j0;
        _mm512_storeu_ps(srow, acc[r][0]);
        _mm512_storeu_ps(srow + kBVL, acc[r][1]);
        _mm512_storeu_ps(srow + 2 * kBVL, acc[r][2]);
      }
    }
  }
}

// O[r][x0 : x0 + NV*16] = f[r] * sum_k A(r, k) . BP[k][x0 : ...] (f != nullptr), or += the sum (f == nullptr),
// for R rows starting at r0 (clamped to nr - 1), where A(r, k) = A[r * lda_r + k * lda_k] is a packed bf16
// pair: the row-major product P.V (lda_k = 1) and the transposed products on rows paired by pair_rows_bf16
// (lda_r = 1) share this one micro kernel.
template <int64_t R, int64_t NV>
void pair_micro_bf16(const uint32_t* __restrict__ A, int64_t lda_r, int64_t lda_k, int64_t r0, int64_t nr, int64_t K2,
                     const uint32_t* __restrict__ BP, int64_t D, int64_t x0, const float* __restrict__ f,
                     float* __restrict__ O) {
  int64_t off[R];
  for (int64_t r = 0; r < R; ++r) off[r] = std::min(r0 + r, nr - 1) * lda_r;
  __m512 acc[R][NV];
#pragma GCC unroll 24
  for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K2; ++k) {
    const uint32_t* ak = A + k * lda_k;
    const uint32_t* bp = BP + k * D + x0;
    __m512bh b[NV];
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) b[v] = as_bh(_mm512_loadu_si512(bp + v * kBVL));
#pragma GCC unroll 24
    for (int64_t r = 0; r < R; ++r) {
      const __m512bh a = as_bh(_mm512_set1_epi32(static_cast<int32_t>(ak[off[r]])));
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  const int64_t rr = std::min(R, nr - r0);
#pragma GCC unroll 24
  for (int64_t r = 0; r < R; ++r) {
    if (r >= rr) break;
    float* o = O + (r0 + r) * D + x0;
    if (f != nullptr) {
      const __m512 fr = _mm512_set1_ps(f[r0 + r]);
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) _mm512_storeu_ps(o + v * kBVL, _mm512_mul_ps(acc[r][v], fr));
    } else {
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) _mm512_storeu_ps(o + v * kBVL, _mm512_add_ps(_mm512_loadu_ps(o + v * kBVL), acc[r][v]));
    }
  }
}

// pair_micro_bf16 over all nr rows and D columns (D % 16 == 0), the widest column block first.
void pair_tiles_bf16(const uint32_t* __restrict__ A, int64_t lda_r, int64_t lda_k, int64_t nr, int64_t K2,
                     const uint32_t* __restrict__ BP, int64_t D, const float* __restrict__ f, float* __restrict__ O) {
  constexpr int64_t R4 = pow2_floor(kAcc / 4), R3 = pow2_floor(kAcc / 3), R2 = pow2_floor(kAcc / 2);
  for (int64_t x0 = 0; x0 < D;) {
    const int64_t nv = std::min<int64_t>(4, (D - x0) / kBVL);
    for (int64_t r0 = 0; r0 < nr;) {
      switch (nv) {
        case 4: pair_micro_bf16<R4, 4>(A, lda_r, lda_k, r0, nr, K2, BP, D, x0, f, O); r0 += R4; break;
        case 3: pair_micro_bf16<R3, 3>(A, lda_r, lda_k, r0, nr, K2, BP, D, x0, f, O); r0 += R3; break;
        case 2: pair_micro_bf16<R2, 2>(A, lda_r, lda_k, r0, nr, K2, BP, D, x0, f, O); r0 += R2; break;
        default: pair_micro_bf16<R2, 1>(A, lda_r, lda_k, r0, nr, K2, BP, D, x0, f, O); r0 += R2; break;
      }
    }
    x0 += nv * kBVL;
  }
}

// O[r] = f[r] * P[r] . V for r < nr from the packed bf16 pairs; needs D % 16 == 0.
void pv_tiles_bf16(const uint32_t* __restrict__ P2, int64_t ldP2, int64_t nr, int64_t M2,
                   const uint32_t* __restrict__ VP, int64_t D, const float* __restrict__ f, float* __restrict__ O) {
  pair_tiles_bf16(P2, ldP2, 1, nr, M2, VP, D, f, O);
}
// T2[i2][j] = the bf16 pair (A[2 i2][j], A[2 i2 + 1][j]) for i2 < ceil(nr/2), j < M (row nr of an odd nr
// reads as 0): the rows of a float32 block paired for the transposed products dK += dS^T.Q, dV += P^T.dO.
void pair_rows_bf16(const float* __restrict__ A, int64_t ldA, int64_t nr, int64_t M, uint32_t* __restrict__ T2,
                    int64_t ldT) {
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i il = _mm512_loadu_si512(kInterleave);
  for (int64_t i2 = 0; 2 * i2 < nr; ++i2) {
    const float* a = A + 2 * i2 * ldA;
    const float* b = 2 * i2 + 1 < nr ? a + ldA : nullptr;
    uint32_t* dst = T2 + i2 * ldT;
    for (int64_t j = 0; j < M; j += 16) {
      const __mmask16 m = tail_mask16(M - j);
      const __m512 va = _mm512_maskz_loadu_ps(m, a + j);
      const __m512 vb = b != nullptr ? _mm512_maskz_loadu_ps(m, b + j) : _mm512_setzero_ps();
      const __m512bh p = _mm512_cvtne2ps_pbh(vb, va);  // bf16 lanes 0..15 from va, 16..31 from vb
      _mm512_mask_storeu_epi32(dst + j, m, _mm512_permutexvar_epi16(il, reinterpret_cast<const __m512i&>(p)));
    }
  }
}

// O[j] += sum_i2 T2[i2][j] . BP[i2] for j < nj (O [nj][D]): the transposed product (A^T.B) on rows paired by
// pair_rows_bf16 / pack_v_bf16; needs D % 16 == 0.
void tn_tiles_bf16(const uint32_t* __restrict__ T2, int64_t ldT, int64_t nj, int64_t K2,
                   const uint32_t* __restrict__ BP, int64_t D, float* __restrict__ O) {
  pair_tiles_bf16(T2, 1, ldT, nj, K2, BP, D, nullptr, O);
}

#include "amx_bf16.h"
#endif  // VTRACK_ISA_BF16

template <typename T>
struct Coefs {
  T a, b, dl;
};

// FDA logits of one row in place, returning their maximum (no mask). Used for dense rows, where a NaN
// logit needs no flag: it propagates through the exponentials into the row's output and LSE. Kept out
// of line so that the vectoriser sees plain restrict pointers.
template <typename T, bool BF = false>
__attribute__((noinline, noclone)) T fda_logits_max(const T* __restrict__ kn, T* __restrict__ s, int64_t M, T qn,
                                                     T sc, T a, T b, T dl) {
  T mx = neg_inf<T>();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < M; ++j) {
    const T qk = s[j];
    const T d2 = std::max(qn + kn[j] - T(2) * qk, T(0));
    const T rep = dl * d2;
    const T x = qk * sc + (a * exp_of<BF>(-rep) - b * rep);
    s[j] = x;
    mx = std::max(mx, x);
  }
  return mx;
}

// Turns raw q.k products of one row into final logits in place (scale, FDA bias, mask) and returns
// their maximum; `nan` is set when a logit is NaN (always for top-K rows, which must not select
// NaN; dense rows may leave it to the NaN propagating through the softmax).
template <typename T, bool BF = false>
inline T finish_logits(const Problem& pb, const Coefs<T>& c, T qn, const T* __restrict__ kn,
                       const T* __restrict__ mrow, T* __restrict__ s, int64_t M, bool& nan) {
  const T sc = static_cast<T>(pb.scale);
  T mx = neg_inf<T>();
  int bad = 0;
  if (pb.fda && pb.topk == 0 && mrow == nullptr) {
    T mx_fda;
#if VTRACK_ISA_AVX512
    if constexpr (std::is_same<T, float>::value && !BF) mx_fda = fda_logits_max_f32(kn, s, M, qn, sc, c.a, c.b, c.dl);
    else
#endif
      mx_fda = fda_logits_max<T, BF>(kn, s, M, qn, sc, c.a, c.b, c.dl);
    nan = false;
    if (!(mx_fda > neg_inf<T>())) {  // no finite maximum: an all-NaN row must not look fully masked
      for (int64_t j = 0; j < M; ++j) nan = nan || (s[j] != s[j]);
    }
    return mx_fda;
  }
  if (pb.fda) {  // separate pass: GCC does not vectorise it fused with the reductions below
    const T a = c.a, b = c.b, dl = c.dl, q2 = qn;
#pragma omp simd
    for (int64_t j = 0; j < M; ++j) {
      const T qk = s[j];
      const T d2 = std::max(q2 + kn[j] - T(2) * qk, T(0));
      const T rep = dl * d2;
      s[j] = qk * sc + (a * exp_of<BF>(-rep) - b * rep);
    }
  }
  const T sc2 = pb.fda ? T(1) : sc;  // the FDA pass above already scaled
#if VTRACK_ISA_AVX512
  if constexpr (std::is_same<T, float>::value) return scale_max_row_f32(s, mrow, M, sc2, nan);
#endif
  if (mrow != nullptr) {
#pragma omp simd reduction(max : mx) reduction(| : bad)
    for (int64_t j = 0; j < M; ++j) {
      T x = s[j] * sc2;
      bad |= (x != x);
      x = mrow[j] != T(0) ? neg_inf<T>() : x;
      s[j] = x;
      mx = std::max(mx, x);
    }
  } else {
#pragma omp simd reduction(max : mx) reduction(| : bad)
    for (int64_t j = 0; j < M; ++j) {
      const T x = s[j] * sc2;
      bad |= (x != x);
      s[j] = x;
      mx = std::max(mx, x);
    }
  }
  nan = bad != 0;
  return mx;
}

// Top-K float32 rows without the FDA bias, when K is a multiple of the vector width: scales the raw q.k
// products of one row in place, applies the mask (masked keys -inf), sets `nan` when a logit is NaN and
// fills the K strided group maxima of select_topk (g[t] = max_j s[t + j*K]) in the same pass (written
// with vector extensions: GCC does not vectorise the strided maxima fused with the NaN reduction);
// returns the row maximum (the largest group maximum). Other rows use finish_logits and group_max.
float finish_topk_logits(const float* __restrict__ mrow, float* __restrict__ s, int64_t M, int64_t K, float sc,
                         float* __restrict__ g, bool& nan) {
  typedef int32_t vint __attribute__((vector_size(VTRACK_VEC_BYTES)));
  const vfloat ninf = vfloat{} - std::numeric_limits<float>::infinity();
  const int64_t full = M / K * K;  // keys in whole groups
  vint bad = {};
  vfloat mxv = ninf;
  for (int64_t t = 0; t < K; t += kVL) {  // lanes t..t+kVL of every group: their maxima stay in a register
    vfloat gv = ninf;
    for (int64_t base = 0; base < full; base += K) {
      vfloat x = vload(s + base + t) * sc;
      bad |= (x != x);
      if (mrow != nullptr) x = vload(mrow + base + t) != 0.0f ? ninf : x;
      vstore(s + base + t, x);
      gv = x > gv ? x : gv;
    }
    vstore(g + t, gv);
    mxv = gv > mxv ? gv : mxv;
  }
  int scalar_bad = 0;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; full + t < M; ++t) {  // the last partial group
    float x = s[full + t] * sc;
    scalar_bad |= (x != x);
    if (mrow != nullptr && mrow[full + t] != 0.0f) x = -std::numeric_limits<float>::infinity();
    s[full + t] = x;
    g[t] = std::max(g[t], x);
    mx = std::max(mx, x);
  }
  for (int64_t l = 0; l < kVL; ++l) {
    scalar_bad |= bad[l];
    mx = std::max(mx, mxv[l]);
  }
  nan = scalar_bad != 0;
  return mx;
}

// Maps floats to integers with the same order (for bisection over representable values).
template <typename T>
struct OrderedKey;
template <>
struct OrderedKey<float> {
  using type = int32_t;
  static int32_t to(float x) {
    int32_t b;
    std::memcpy(&b, &x, sizeof(b));
    return b >= 0 ? b : (b ^ 0x7fffffff);
  }
  static float from(int32_t k) {
    const int32_t b = k >= 0 ? k : (k ^ 0x7fffffff);
    float x;
    std::memcpy(&x, &b, sizeof(x));
    return x;
  }
};
template <>
struct OrderedKey<double> {
  using type = int64_t;
  static int64_t to(double x) {
    int64_t b;
    std::memcpy(&b, &x, sizeof(b));
    return b >= 0 ? b : (b ^ 0x7fffffffffffffffLL);
  }
  static double from(int64_t k) {
    const int64_t b = k >= 0 ? k : (k ^ 0x7fffffffffffffffLL);
    double x;
    std::memcpy(&x, &b, sizeof(x));
    return x;
  }
};

template <typename T>
inline int64_t count_ge(const T* __restrict__ s, int64_t M, T t) {
  int32_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t j = 0; j < M; ++j) c += s[j] >= t ? 1 : 0;
  return c;
}

// Copies the logits >= lo (values and key indices, in index order) to cv/ci (room for M + 16 each);
// returns their count. Branch-free; AVX-512 compresses 16 lanes at a time in registers.
template <typename T>
int64_t compact_ge(const T* __restrict__ s, int64_t M, T lo, T* __restrict__ cv, int32_t* __restrict__ ci) {
  int64_t c = 0, j = 0;
#if VTRACK_ISA_AVX512
  if constexpr (std::is_same<T, float>::value) {
    const __m512 vlo = _mm512_set1_ps(lo);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (; j + 16 <= M; j += 16) {
      const __m512 x = _mm512_loadu_ps(s + j);
      const __mmask16 m = _mm512_cmp_ps_mask(x, vlo, _CMP_GE_OQ);
      _mm512_storeu_ps(cv + c, _mm512_maskz_compress_ps(m, x));
      _mm512_storeu_si512(reinterpret_cast<void*>(ci + c), _mm512_maskz_compress_epi32(m, idx));
      c += __builtin_popcount(static_cast<unsigned>(m));
      idx = _mm512_add_epi32(idx, step);
    }
  }
#endif
  for (; j < M; ++j) {
    cv[c] = s[j];
    ci[c] = static_cast<int32_t>(j);
    c += s[j] >= lo;
  }
  return c;
}

#if VTRACK_ISA_AVX512
// The k-th largest of x[0:n] (1 <= k <= n; finite or +inf values, no NaN) by quickselect: each round
// splits the values around a median-of-3 pivot into two of the three scratch buffers (room for n + 16
// floats each) with AVX-512 register compression, and continues in the side that holds the k-th
// largest (expected O(n) in all, a few rounds for n ~ 3K); n <= 16 ends with a rank count in one
// register. Replaces the bisection over ordered keys (~25 counting passes over the candidates).
inline float kth_largest_avx512(const float* __restrict__ x, int64_t n, int64_t k, float* __restrict__ work,
                                int64_t stride) {
  float* const bufs[3] = {work, work + stride, work + 2 * stride};
  const float* src = x;
  int in_buf = -1;  // which of bufs holds src (-1: the caller's array)
  while (n > 16) {
    const float a = src[0], b = src[n / 2], c = src[n - 1];
    const float piv = std::max(std::min(a, b), std::min(std::max(a, b), c));
    const int og = in_buf == 0 ? 1 : 0, lt_buf = in_buf == 2 ? 1 : 2;  // the two buffers other than src's
    float* __restrict__ gt = bufs[og];
    float* __restrict__ lt = bufs[lt_buf];
    const __m512 vp = _mm512_set1_ps(piv);
    int64_t ngt = 0, nlt = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m512 v = _mm512_loadu_ps(src + j);
      const __mmask16 mg = _mm512_cmp_ps_mask(v, vp, _CMP_GT_OQ), ml = _mm512_cmp_ps_mask(v, vp, _CMP_LT_OQ);
      _mm512_storeu_ps(gt + ngt, _mm512_maskz_compress_ps(mg, v));
      _mm512_storeu_ps(lt + nlt, _mm512_maskz_compress_ps(ml, v));
      ngt += __builtin_popcount(static_cast<unsigned>(mg));
      nlt += __builtin_popcount(static_cast<unsigned>(ml));
    }
    if (j < n) {
      const __mmask16 tail = static_cast<__mmask16>((1u << (n - j)) - 1u);
      const __m512 v = _mm512_maskz_loadu_ps(tail, src + j);
      const __mmask16 mg = _mm512_mask_cmp_ps_mask(tail, v, vp, _CMP_GT_OQ);
      const __mmask16 ml = _mm512_mask_cmp_ps_mask(tail, v, vp, _CMP_LT_OQ);
      _mm512_storeu_ps(gt + ngt, _mm512_maskz_compress_ps(mg, v));
      _mm512_storeu_ps(lt + nlt, _mm512_maskz_compress_ps(ml, v));
      ngt += __builtin_popcount(static_cast<unsigned>(mg));
      nlt += __builtin_popcount(static_cast<unsigned>(ml));
    }
    const int64_t neq = n - ngt - nlt;  // >= 1: the pivot is one of the values
    if (k <= ngt) {
      src = gt;
      n = ngt;
      in_buf = og;
    } else if (k <= ngt + neq) {
      return piv;
    } else {
      k -= ngt + neq;
      src = lt;
      n = nlt;
      in_buf = lt_buf;
    }
  }
  const __mmask16 m = tail_mask16(n);
  const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), m, src);
  for (int64_t i = 0; i < n; ++i) {  // the value with (#greater) < k <= (#greater or equal)
    const __m512 vi = _mm512_set1_ps(src[i]);
    const int gtc = __builtin_popcount(static_cast<unsigned>(_mm512_cmp_ps_mask(v, vi, _CMP_GT_OQ)));
    const int gec = __builtin_popcount(static_cast<unsigned>(_mm512_cmp_ps_mask(v, vi, _CMP_GE_OQ)));
    if (gtc < k && k <= gec) return src[i];
  }
  return src[0];  // not reached for 1 <= k <= n
}
#endif

// Selects the min(K, valid) largest logits of a row (NaN-free, masked keys are -inf and excluded through
// `mrow`), ties toward the lower key index. Writes the kept indices in ascending order to `kept` and
// their logits to `kv` (room for M + 16 entries each) and returns their count. `g` holds the K strided
// group maxima of the row (g[t] = max_j s[t + j*K]), computed by the caller in the pass that finished
// the logits; `work` is scratch of 3 * (M + 16) values.
//
// A lower bound lo of the K-th largest value is the smallest group maximum (each of the K groups holds
// a logit at least that large). The logits >= lo (typically a few K, not M) are compacted with their
// indices, and the K-th largest value tau is found among them: by quickselect with AVX-512 compression
// (float32 on the AVX-512 path), else by bisection on the order-preserving integer image of the floats
// with vectorised counting. Then every candidate > tau is kept, plus the lowest-index candidates equal
// to tau until K are kept.
template <typename T>
int64_t select_topk(const T* __restrict__ s, const bool* __restrict__ mrow, int64_t M, int64_t K, int64_t nvalid,
                    T row_max, const T* __restrict__ g, int32_t* __restrict__ kept, T* __restrict__ kv,
                    T* __restrict__ cv, int32_t* __restrict__ ci, T* __restrict__ work) {
  if (K >= nvalid) {
    int64_t c = 0;
    for (int64_t j = 0; j < M; ++j) {
      kept[c] = static_cast<int32_t>(j);
      kv[c] = s[j];
      c += (mrow == nullptr || !mrow[j]);
    }
    return c;
  }
  T lo = std::numeric_limits<T>::max();
#pragma omp simd reduction(min : lo)
  for (int64_t t = 0; t < K; ++t) lo = std::min(lo, g[t]);
  lo = std::max(lo, std::numeric_limits<T>::lowest());  // masked keys are -inf: count valid ones only
  const int64_t C = compact_ge(s, M, lo, cv, ci);
  if (C <= K) {  // exactly K candidates (C >= K by construction)
    std::copy(ci, ci + C, kept);
    std::copy(cv, cv + C, kv);
    return C;
  }
  T tau;
#if VTRACK_ISA_AVX512
  if constexpr (std::is_same<T, float>::value) {
    tau = kth_largest_avx512(cv, C, K, work, M + 16);
  } else
#endif
  {
    (void)work;
    // Bisection: at most 32 (64) steps over the C candidates. Invariant: count_ge(lo) >= K > count_ge(hi).
    using Key = typename OrderedKey<T>::type;
    using UKey = std::make_unsigned_t<Key>;
    Key klo = OrderedKey<T>::to(lo);
    Key khi = OrderedKey<T>::to(std::nextafter(row_max, std::numeric_limits<T>::infinity()));
    while (klo < khi && static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) > 1) {
      const Key kmid = static_cast<Key>(static_cast<UKey>(klo) +
                                        static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) / 2);
      const int64_t c = count_ge(cv, C, OrderedKey<T>::from(kmid));
      if (c >= K) {
        klo = kmid;
        if (c == K) break;
      } else {
        khi = kmid;
      }
    }
    lo = OrderedKey<T>::from(klo);
    // tau: the smallest candidate >= lo, i.e. the K-th largest.
    tau = std::numeric_limits<T>::infinity();
#pragma omp simd reduction(min : tau)
    for (int64_t t = 0; t < C; ++t) {
      const T cand = cv[t] >= lo ? cv[t] : std::numeric_limits<T>::infinity();
      tau = std::min(tau, cand);
    }
  }
  int64_t c = 0;
#if VTRACK_ISA_AVX512
  if constexpr (std::is_same<T, float>::value) {  // keep every candidate >= tau; done unless tau has surplus ties
    const __m512 vt = _mm512_set1_ps(tau);
    for (int64_t t = 0; t < C; t += 16) {
      const __mmask16 in = tail_mask16(C - t);
      const __m512 x = _mm512_maskz_loadu_ps(in, cv + t);
      const __m512i xi = _mm512_maskz_loadu_epi32(in, ci + t);
      const __mmask16 m = _mm512_mask_cmp_ps_mask(in, x, vt, _CMP_GE_OQ);
      _mm512_storeu_ps(kv + c, _mm512_maskz_compress_ps(m, x));
      _mm512_storeu_si512(reinterpret_cast<void*>(kept + c), _mm512_maskz_compress_epi32(m, xi));
      c += __builtin_popcount(static_cast<unsigned>(m));
    }
    if (c <= K) return c;  // c >= K: tau is the K-th largest
    c = 0;
  }
#endif
  int32_t n_gt = 0, n_eq = 0;
#pragma omp simd reduction(+ : n_gt, n_eq)
  for (int64_t t = 0; t < C; ++t) {
    n_gt += cv[t] > tau ? 1 : 0;
    n_eq += cv[t] == tau ? 1 : 0;
  }
  if (n_gt + n_eq <= K) {  // no surplus ties: keep every candidate >= tau (exactly K of them)
    for (int64_t t = 0; t < C; ++t) {
      kept[c] = ci[t];
      kv[c] = cv[t];
      c += cv[t] >= tau;
    }
    return std::min(c, K);
  }
  int64_t need_eq = K - n_gt;
  for (int64_t t = 0; t < C && c < K; ++t) {
    if (cv[t] > tau || (cv[t] == tau && need_eq-- > 0)) {
      kv[c] = cv[t];
      kept[c++] = ci[t];
    }
  }
  return c;
}

// Strided group maxima of a finished row for select_topk: g[t] = max_j s[t + j*K] (t < K).
template <typename T>
void group_max(const T* __restrict__ s, int64_t M, int64_t K, T* __restrict__ g) {
  std::fill(g, g + K, neg_inf<T>());
  for (int64_t base = 0; base < M; base += K) {
    const int64_t len = std::min(K, M - base);
    const T* __restrict__ sb = s + base;
#pragma omp simd
    for (int64_t t = 0; t < len; ++t) g[t] = std::max(g[t], sb[t]);
  }
}

// The FDA backward of one (query row i, key j) pair: the one copy of the formula, used by the dense
// rows (fda_backward_row) and the sparse top-K rows (backward_kernel). From q.k, dO.v, |k_j|^2, whether
// the key is ignored (masked or not kept: P = 0), the row's |q_i|^2, LSE and Di = dO.O it gives P, the
// coefficient w of k_j in dq_i (scale*dS - 2h), the FDA term h (dq_i and dk_j get 2h(q_i - k_j)) and
// the key's terms of dL/dalpha, dL/dbeta, dL/ddelta.
template <typename T>
struct FdaKeyGrad {
  T p, w, h, ga, gb, gd;
};

template <typename T, bool BF = false>
__attribute__((always_inline)) inline FdaKeyGrad<T> fda_backward_key(T qk, T dpj, T knj, T ignored, T qn, T sc,
                                                                     const Coefs<T>& c, T li, T di) {
  const T d2raw = qn + knj - T(2) * qk;
  const T d2 = std::max(d2raw, T(0));
  const T e = exp_of<BF>(-c.dl * d2);
  const T logit = qk * sc + c.a * e - c.b * c.dl * d2;
  const T pe = exp_of<BF>(logit - li);
  const T p = ignored != T(0) ? T(0) : pe;
  const T ds = p * (dpj - di);
  const T hterm = d2raw >= T(0) ? ds * (-c.dl * (c.a * e + c.b)) : T(0);
  return {p, ds * sc - T(2) * hterm, hterm, ds * e, -ds * c.dl * d2, -ds * d2 * (c.a * e + c.b)};
}

// One row of the dense FDA backward, in place: s holds q.k on entry and P on exit, dp holds dO.v on
// entry and the coefficient of k_j in dq_i (scale*dS - 2h) on exit; colH/rh/sa/sb/sd accumulate the
// FDA terms. Kept out of line so that the vectoriser sees plain restrict pointers.
template <typename T, bool BF = false>
__attribute__((noinline, noclone)) void fda_backward_row(const T* __restrict__ kn, const T* __restrict__ ign,
                                                T* __restrict__ s, T* __restrict__ dp, T* __restrict__ colH,
                                                int64_t M, T qn, T sc, Coefs<T> c, T li, T di, T& rh_out,
                                                T& sa_out, T& sb_out, T& sd_out) {
  T rh = 0, sa = 0, sb = 0, sd = 0;
#pragma omp simd reduction(+ : rh, sa, sb, sd)
  for (int64_t j = 0; j < M; ++j) {
    const FdaKeyGrad<T> g = fda_backward_key<T, BF>(s[j], dp[j], kn[j], ign[j], qn, sc, c, li, di);
    s[j] = g.p;
    dp[j] = g.w;
    colH[j] += g.h;
    rh += g.h;
    sa += g.ga;
    sb += g.gb;
    sd += g.gd;
  }
  rh_out = rh;
  sa_out = sa;
  sb_out = sb;
  sd_out = sd;
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

// BF (float32 only, AVX512-BF16 path): q, k, v are bf16 bits; Q.K^T and P.V run on bf16 operands with
// vdpbf16ps (float32 accumulation), everything else (logits, FDA bias, top-K, softmax, lse, CE rows, the
// sparse P.V) is the float32 code on the float32 products, with fast_exp_bf16 for its exponentials.
template <typename T, bool BF = false>
void forward_kernel(const Problem& pb, const std::conditional_t<BF, uint16_t, T>* q,
                    const std::conditional_t<BF, uint16_t, T>* k, const std::conditional_t<BF, uint16_t, T>* v, T* out,
                    T* lse, int32_t* index, T* ce_probs) {
  using In = std::conditional_t<BF, uint16_t, T>;
  static_assert(!BF || std::is_same<T, float>::value, "the bf16 engine computes in float32");
  const int64_t B = pb.d.B, H = pb.d.H, N = pb.d.N, M = pb.d.M, D = pb.d.D, K = pb.K;
  const int64_t nqb = (N + kBlockQ - 1) / kBlockQ;
  const int64_t ntask = B * H * nqb;
  const int64_t Ls = pb.num_template > 0 ? M - pb.num_template : 0;
  const int64_t nT = static_cast<int64_t>(pb.template_rows.size());
  const bool use_blas = blas_enabled();
  const T inf = std::numeric_limits<T>::infinity();

  at::parallel_for(0, ntask, 1, [&](int64_t task_begin, int64_t task_end) {

    // float32: register tiles with K^T packed per (batch, head) and S rows padded to Mp; else BLAS/loops.
    constexpr bool kTiles = std::is_same<T, float>::value;
    const int64_t Mp = kTiles ? round_up(M, kVL * kQV) : M;
    const int64_t ldS = Mp;
    const bool pv_tiled = kTiles && D % kVL == 0;
    std::vector<float> KT(kTiles ? static_cast<size_t>(D * Mp) : 0);
    int64_t packed_bh = -1, kn_bh = -1;  // the (batch, head) whose K^T / key norms are in KT / kn
    std::vector<T> S(static_cast<size_t>(kBlockQ * ldS)), kn(pb.fda ? M : 0), qn(kBlockQ), inv(kBlockQ), tmp;
    std::vector<T> gmax(static_cast<size_t>(std::max<int64_t>(K, 1))), pe(static_cast<size_t>(M));
    std::vector<T> cv(pb.topk > 0 ? static_cast<size_t>(M + 16) : 0), kv(cv.size());
    std::vector<T> work(pb.topk > 0 ? static_cast<size_t>(3 * (M + 16)) : 0);  // select_topk scratch
    std::vector<int32_t> kept(static_cast<size_t>(M + 16)), ci(pb.topk > 0 ? static_cast<size_t>(M + 16) : 0);
    // bf16: K^T pairs and (dense P.V) V pairs per (batch, head), Q pairs and rounded P per block; V in float32
    // for the sparse top-K gathers and a head dim that is not a multiple of the vector width.
    const int64_t D2 = (D + 1) / 2, M2 = (M + 1) / 2;
    const bool sparse_rows = pb.topk > 0 && 4 * K <= M;
    const bool need_vf = BF && (sparse_rows || !pv_tiled);
    const bool need_vp = BF && pv_tiled && !sparse_rows;
#if VTRACK_ISA_BF16
    // AMX (pb.amx): the pair dims padded with zeros to whole tiles (amx_bf16.h); this thread's tile configuration.
    const bool amx = BF && pb.amx;
    const int64_t D2q = amx ? amx::pad(D2) : D2, M2v = amx ? amx::pad(M2) : M2, ldP2 = amx ? amx::pad(Mp / 2) : Mp / 2;
    amx::Scope tiles(amx);
#else
    const int64_t D2q = D2, M2v = M2, ldP2 = Mp / 2;
#endif
    std::vector<uint32_t> KT2(BF ? static_cast<size_t>(D2q * Mp) : 0), Qb(BF ? static_cast<size_t>(kBlockQ * D2q) : 0);
    std::vector<uint32_t> VP(need_vp ? static_cast<size_t>(M2v * D) : 0);
    std::vector<uint32_t> P2(need_vp ? static_cast<size_t>(kBlockQ * ldP2) : 0);
    std::vector<float> Vf(need_vf ? static_cast<size_t>(M * D) : 0);
    std::vector<char> p2_done(need_vp ? static_cast<size_t>(kBlockQ) : 0);  // rows whose P2 the row pass wrote
    (void)D2;
    (void)M2;

    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t bh = task / nqb, qb = task % nqb, b = bh / H, h = bh % H;
      const int64_t i0 = qb * kBlockQ, nr = std::min(kBlockQ, N - i0);
      const In* Q = q + (bh * N + i0) * D;
      const In* Kp = k + bh * M * D;
      const In* V = v + bh * M * D;
      T* O = out + (bh * N + i0) * D;
      const T* Vv = nullptr;  // V in the compute dtype (the sparse gathers, the non-tiled P.V)
      if constexpr (BF) Vv = Vf.data();
      else Vv = V;
      const bool* mrow = pb.mask != nullptr ? pb.mask + b * M : nullptr;
      const T* mrow_t = pb.mask != nullptr ? static_cast<const T*>(pb.mask_t) + b * M : nullptr;
      const Coefs<T> c{pb.fda ? T(pb.alpha[h]) : T(0), pb.fda ? T(pb.beta[h]) : T(0),
                       pb.fda ? T(pb.delta[h]) : T(0)};
      if (pb.fda) {
        if (kn_bh != bh) {  // once per (batch, head) and thread, not per query block
          for (int64_t j = 0; j < M; ++j) {
#if VTRACK_ISA_BF16
            if constexpr (BF) kn[j] = sqnorm_bf16(Kp + j * D, D);
            else
#endif
              kn[j] = dot(Kp + j * D, Kp + j * D, D);
          }
          kn_bh = bh;
        }
        for (int64_t r = 0; r < nr; ++r) {
#if VTRACK_ISA_BF16
          if constexpr (BF) qn[r] = sqnorm_bf16(Q + r * D, D);
          else
#endif
            qn[r] = dot(Q + r * D, Q + r * D, D);
        }
      }
      if constexpr (BF) {
#if VTRACK_ISA_BF16
        if (packed_bh != bh) {
          pack_kt_bf16(Kp, M, D, Mp, KT2.data());
          if (need_vp) pack_v_bf16(V, M, D, VP.data());
          for (size_t x = 0; x < Vf.size(); ++x) Vf[x] = bf16_to_float(V[x]);
          packed_bh = bh;
        }
        pack_q_bf16(Q, nr, D, Qb.data(), D2q);
        if (amx) amx::qk_tiles(Qb.data(), D2q, nr, D2q, KT2.data(), Mp, S.data(), ldS);
        else qk_tiles_bf16(Qb.data(), nr, D2, KT2.data(), Mp, S.data(), ldS);
#endif
      } else if constexpr (kTiles) {
        if (packed_bh != bh) {
          pack_kt(Kp, M, D, Mp, KT.data());
          packed_bh = bh;
        }
        qk_tiles(Q, nr, D, KT.data(), Mp, S.data(), ldS);
      } else {
        gemm<T>(false, true, nr, M, D, Q, D, Kp, D, T(0), S.data(), ldS, use_blas, tmp);
      }
      // Top-K rows use sparse gathers for P.V when few keys are kept, else the dense block product.
      const bool sparse = pb.topk > 0 && 4 * K <= M;
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t i = i0 + r;
        T* __restrict__ s = S.data() + r * ldS;
        T* __restrict__ o = O + r * D;
        bool nan = false;
        T rmax = neg_inf<T>();
        if (kTiles && pb.topk > 0 && !pb.fda && K % kVL == 0) {
          if constexpr (kTiles)
            rmax = finish_topk_logits(mrow_t, s, M, K, static_cast<float>(pb.scale), gmax.data(), nan);
        } else {
          rmax = finish_logits<T, BF>(pb, c, qn[r], kn.data(), mrow_t, s, M, nan);
          if (pb.topk > 0 && !nan) group_max<T>(s, M, K, gmax.data());
        }
        T* lrow = lse + bh * N + i;
        if (nan) {  // NaN inputs propagate to this row (documented), nothing is selected
          std::fill(o, o + D, std::numeric_limits<T>::quiet_NaN());
          *lrow = std::numeric_limits<T>::quiet_NaN();
          if (pb.topk > 0) std::fill(index + (bh * N + i) * K, index + (bh * N + i + 1) * K, -1);
          std::fill(s, s + M, std::numeric_limits<T>::quiet_NaN());
          inv[r] = 0;
          continue;
        }
        if (rmax == neg_inf<T>()) {  // no valid key: zero row (lse = +inf marks it)
          std::fill(o, o + D, T(0));
          std::fill(s, s + M, T(0));
          if (pb.topk > 0) std::fill(index + (bh * N + i) * K, index + (bh * N + i + 1) * K, -1);
          *lrow = inf;
          inv[r] = 0;
          continue;
        }
        if (pb.topk > 0) {
          const int64_t nk = select_topk<T>(s, mrow, M, K, pb.nvalid[b], rmax, gmax.data(), kept.data(), kv.data(),
                                            cv.data(), ci.data(), work.data());
          int32_t* irow = index + (bh * N + i) * K;
          std::copy(kept.data(), kept.data() + nk, irow);
          std::fill(irow + nk, irow + K, -1);
          T sum = 0;
          T* __restrict__ e = pe.data();
          const T* __restrict__ kvp = kv.data();
#pragma omp simd reduction(+ : sum)
          for (int64_t t = 0; t < nk; ++t) {
            e[t] = exp_of<BF>(kvp[t] - rmax);
            sum += e[t];
          }
          const T isum = T(1) / sum;
          *lrow = rmax + std::log(sum);
          if (sparse) {
            for (int64_t t = 0; t < nk; ++t) e[t] *= isum;
            gather_pv<T>(e, kept.data(), nk, Vv, D, o);
            inv[r] = T(1);
            if (nT > 0) {  // normalised sparse probabilities for the CE rows
              std::fill(s, s + M, T(0));
              for (int64_t t = 0; t < nk; ++t) s[kept[t]] = e[t];
            }
          } else {
            std::fill(s, s + M, T(0));
            for (int64_t t = 0; t < nk; ++t) s[kept[t]] = e[t];
            inv[r] = isum;
          }
        } else {
#if VTRACK_ISA_BF16
          if constexpr (BF) {
            bool tmpl = false;  // a CE template row keeps its float32 probabilities in S
            for (int64_t t = 0; t < nT; ++t) tmpl = tmpl || pb.template_rows[t] == i;
            if (need_vp && !tmpl) {
              const float sum = exp_round_row_bf16(s, M, rmax, P2.data() + r * ldP2);
              p2_done[r] = 1;
              inv[r] = 1.0f / sum;
              *lrow = rmax + std::log(sum);
              continue;
            }
          }
#endif
          T sum = 0;
#if VTRACK_ISA_AVX512
          if constexpr (std::is_same<T, float>::value && !BF) sum = exp_sum_row_f32(s, M, rmax);
          else
#endif
          {
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < M; ++j) {
              const T e = exp_of<BF>(s[j] - rmax);
              s[j] = e;
              sum += e;
            }
          }
          inv[r] = T(1) / sum;
          *lrow = rmax + std::log(sum);
        }
      }
      if (!sparse) {
        for (int64_t r = 0; r < nr; ++r)  // NaN rows stay NaN (their S row is NaN, f must not be 0)
          if (lse[bh * N + i0 + r] != lse[bh * N + i0 + r]) inv[r] = T(1);
        if (pv_tiled) {
          if constexpr (BF) {
#if VTRACK_ISA_BF16
            for (int64_t r = 0; r < nr; ++r) {  // the rows the row pass left in S (NaN, no valid key, CE, top-K)
              if (!p2_done[r]) round_rows_bf16(S.data() + r * ldS, ldS, 1, M, P2.data() + r * ldP2, ldP2);
              p2_done[r] = 0;
            }
            if (amx) amx::pair_tiles(P2.data(), ldP2, nr, M2v, VP.data(), D, inv.data(), O);
            else pv_tiles_bf16(P2.data(), ldP2, nr, M2, VP.data(), D, inv.data(), O);
#endif
          } else if constexpr (kTiles) {
            pv_tiles(S.data(), ldS, nr, M, V, D, inv.data(), O);
          }
        } else {
          gemm<T>(false, false, nr, D, M, S.data(), ldS, Vv, D, T(0), O, D, use_blas, tmp);
          for (int64_t r = 0; r < nr; ++r) {
            T* __restrict__ o = O + r * D;
            const T f = inv[r];
#pragma omp simd
            for (int64_t x = 0; x < D; ++x) o[x] *= f;
          }
        }
      }
      if (nT > 0) {
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t i = i0 + r;
          const T f = inv[r];
          const T* s = S.data() + r * ldS + pb.num_template;
          for (int64_t t = 0; t < nT; ++t) {
            if (pb.template_rows[t] != i) continue;
            T* dst = ce_probs + ((bh * nT) + t) * Ls;
            for (int64_t j = 0; j < Ls; ++j) dst[j] = s[j] * f;
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

// BF (float32 only, AVX512-BF16 path): q, k, v, out and gout are bf16 bits, widened one (batch, head) at a time
// into per-thread float32 scratch (cache-resident; the op no longer widens whole tensors); the dense rows' Q.K^T, dO.V^T, dS.K
// and (D % 16 == 0) dK += dS^T.Q, dV += P^T.dO run on bf16 operands with vdpbf16ps (float32 accumulation; P and
// dS rounded to bf16 as a same-precision program does); the sparse top-K rows and every elementwise pass stay
// float32 (their exponentials fast_exp_bf16, as in the bf16 forward).
template <typename T, bool BF = false>
void backward_kernel(const Problem& pb, const std::conditional_t<BF, uint16_t, T>* q,
                     const std::conditional_t<BF, uint16_t, T>* k, const std::conditional_t<BF, uint16_t, T>* v,
                     const std::conditional_t<BF, uint16_t, T>* out, const T* lse, const int32_t* index,
                     const std::conditional_t<BF, uint16_t, T>* gout, T* dq, T* dk, T* dv, double* dcoef /*[B*H*3]*/) {
  static_assert(!BF || std::is_same<T, float>::value, "the bf16 engine computes in float32");
  const int64_t B = pb.d.B, H = pb.d.H, N = pb.d.N, M = pb.d.M, D = pb.d.D, K = pb.K;
  const bool use_blas = blas_enabled();
  const T sc = static_cast<T>(pb.scale);

  at::parallel_for(0, B * H, 1, [&](int64_t task_begin, int64_t task_end) {

    const bool sparse = pb.topk > 0 && 4 * K <= M;
    std::vector<T> S, dP, kn(M), colH(M), tmp, Di(kBlockQB), rowH(kBlockQB);
    std::vector<T> ignore(pb.topk > 0 ? M : 0);  // dense top-K rows: 1 for keys not kept
    // sparse rows: per kept key, q.k, dO.v, |k|^2, the dq coefficient, P and the FDA h term, and the key index
    std::vector<T> gqk(sparse ? K : 0), gdp(gqk.size()), gkn(gqk.size()), gw(gqk.size()), gp(gqk.size()),
        gh(gqk.size());
    std::vector<int32_t> gi(sparse ? K : 0);
    const std::vector<T> nomask(static_cast<size_t>(M), T(0));
    // float32 dense rows: register tiles for Q.K^T, dO.V^T (K^T, V^T packed per head) and dS.K.
    constexpr bool kTiles = std::is_same<T, float>::value;
    const bool tiled = kTiles && !sparse;
    const int64_t ldS = tiled ? round_up(M, kVL * kQV) : M;
    const bool dq_tiled = tiled && D % kVL == 0;
    std::vector<float> KT(tiled && !BF ? static_cast<size_t>(D * ldS) : 0),
        VT(tiled && !BF ? static_cast<size_t>(D * ldS) : 0);
    const std::vector<float> ones(dq_tiled ? static_cast<size_t>(kBlockQB) : 0, 1.0f);
    // bf16: K^T, V^T pairs and K pairs along the keys per head, Q and dO pairs and the rounded dS per block.
    const int64_t D2 = (D + 1) / 2, M2 = (M + 1) / 2;
    const bool bt = BF && tiled;
#if VTRACK_ISA_BF16
    // AMX (pb.amx): the pair dims padded with zeros to whole tiles, dK^T and dV^T accumulated per head (amx_bf16.h);
    // this thread's tile configuration.
    const bool amx = bt && pb.amx;
    const int64_t D2q = amx ? amx::pad(D2) : D2, M2v = amx ? amx::pad(M2) : M2, ldP2 = amx ? amx::pad(ldS / 2) : ldS / 2;
    amx::Scope tiles(amx);
#else
    const bool amx = false;
    const int64_t D2q = D2, M2v = M2, ldP2 = ldS / 2;
#endif
    constexpr int64_t kPairsQB = kBlockQB / 2;  // pairs of a block's rows (a multiple of 16)
    std::vector<uint32_t> KT2(bt ? static_cast<size_t>(D2q * ldS) : 0), VT2(KT2.size());
    std::vector<uint32_t> Qb(bt ? static_cast<size_t>(kBlockQB * D2q) : 0), dOb(Qb.size());
    std::vector<uint32_t> KP(bt && dq_tiled ? static_cast<size_t>(M2v * D) : 0);
    std::vector<uint32_t> dS2(bt && dq_tiled ? static_cast<size_t>(kBlockQB * ldP2) : 0);
    // dK/dV (D % 16 == 0): dS and P with their rows paired, Q and dO with their rows interleaved (AMX: transposed)
    std::vector<uint32_t> T2(bt && dq_tiled ? static_cast<size_t>(kPairsQB * ldS) : 0);
    std::vector<uint32_t> QP(bt && dq_tiled ? static_cast<size_t>(kPairsQB * D) : 0), dOP(QP.size());
    std::vector<float> dKT(amx && dq_tiled ? static_cast<size_t>(D * ldS) : 0), dVT(dKT.size());
    (void)amx;
    (void)D2;
    (void)M2;
    // bf16: the head's K, V, Q, dO and O widened to float32 (exact)
    std::vector<float> Kf(BF ? static_cast<size_t>(M * D) : 0), Vf(Kf.size());
    std::vector<float> Qf(BF ? static_cast<size_t>(N * D) : 0), dOf(Qf.size()), Of(Qf.size());
    if (!sparse) {
      S.resize(static_cast<size_t>(kBlockQB * ldS));
      dP.resize(static_cast<size_t>(kBlockQB * ldS));
    }

    for (int64_t bh = task_begin; bh < task_end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* Kp = nullptr;
      const T* V = nullptr;
      const T* qh = nullptr;  // this head's rows of q, gout and out
      const T* goh = nullptr;
      const T* oh = nullptr;
      if constexpr (BF) {
#if VTRACK_ISA_BF16
        const auto widen = [](const uint16_t* __restrict__ x, int64_t n, float* __restrict__ y) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_float(x[i]);
        };
        widen(k + bh * M * D, M * D, Kf.data());
        widen(v + bh * M * D, M * D, Vf.data());
        widen(q + bh * N * D, N * D, Qf.data());
        widen(gout + bh * N * D, N * D, dOf.data());
        widen(out + bh * N * D, N * D, Of.data());
        Kp = Kf.data();
        V = Vf.data();
        qh = Qf.data();
        goh = dOf.data();
        oh = Of.data();
#endif
      } else {
        Kp = k + bh * M * D;
        V = v + bh * M * D;
        qh = q + bh * N * D;
        goh = gout + bh * N * D;
        oh = out + bh * N * D;
      }
      T* dK = dk + bh * M * D;
      T* dV = dv + bh * M * D;
      const T* mrow_t = pb.mask != nullptr ? static_cast<const T*>(pb.mask_t) + b * M : nullptr;
      const Coefs<T> c{pb.fda ? T(pb.alpha[h]) : T(0), pb.fda ? T(pb.beta[h]) : T(0),
                       pb.fda ? T(pb.delta[h]) : T(0)};
      std::fill(dK, dK + M * D, T(0));
      std::fill(dV, dV + M * D, T(0));
      std::fill(colH.begin(), colH.end(), T(0));
      if (pb.fda)
        for (int64_t j = 0; j < M; ++j) kn[j] = dot(Kp + j * D, Kp + j * D, D);
      if constexpr (BF) {
#if VTRACK_ISA_BF16
        if (tiled) {
          std::fill(dKT.begin(), dKT.end(), 0.0f);
          std::fill(dVT.begin(), dVT.end(), 0.0f);
          pack_kt_bf16(k + bh * M * D, M, D, ldS, KT2.data());
          if (dq_tiled) pack_v_bf16(k + bh * M * D, M, D, KP.data());
          pack_kt_bf16(v + bh * M * D, M, D, ldS, VT2.data());
        }
#endif
      } else if constexpr (kTiles) {
        if (tiled) {
          pack_kt(Kp, M, D, ldS, KT.data());
          pack_kt(V, M, D, ldS, VT.data());
        }
      }
      double ga = 0, gb = 0, gd = 0;
      for (int64_t i0 = 0; i0 < N; i0 += kBlockQB) {
        const int64_t nr = std::min(kBlockQB, N - i0);
        const T* Q = qh + i0 * D;
        const T* dO = goh + i0 * D;
        const T* L = lse + bh * N + i0;
        T* dQ = dq + (bh * N + i0) * D;
        for (int64_t r = 0; r < nr; ++r) Di[r] = dot(dO + r * D, oh + (i0 + r) * D, D);
        if (sparse) {
          for (int64_t r = 0; r < nr; ++r) {
            const T* qi = Q + r * D;
            const T* doi = dO + r * D;
            T* dqi = dQ + r * D;
            const T qn = pb.fda ? dot(qi, qi, D) : T(0);
            const int32_t* irow = index + (bh * N + i0 + r) * K;
            // 1) the products of the kept keys (dq_i = sum_t g_t k_j is summed in registers below)
            int64_t nkeep = 0;
            for (int64_t t = 0; t < K; ++t) {
              const int64_t j = irow[t];
              if (j < 0 || j >= M) continue;  // padding (or an invalid index from a direct call)
              gi[nkeep] = static_cast<int32_t>(j);
              gqk[nkeep] = dot(qi, Kp + j * D, D);
              gdp[nkeep] = dot(doi, V + j * D, D);
              gkn[nkeep++] = pb.fda ? kn[j] : T(0);
            }
            // 2) probabilities and coefficients, vectorised over the kept keys
            const T li = L[r], di = Di[r];
            T rh = 0;
            if (pb.fda) {
              double sa = 0, sb = 0, sd = 0;
#pragma omp simd reduction(+ : rh, sa, sb, sd)
              for (int64_t t = 0; t < nkeep; ++t) {
                const FdaKeyGrad<T> g = fda_backward_key<T, BF>(gqk[t], gdp[t], gkn[t], T(0), qn, sc, c, li, di);
                gp[t] = g.p;
                gw[t] = g.w;
                gh[t] = g.h;
                rh += g.h;
                sa += double(g.ga);
                sb += double(g.gb);
                sd += double(g.gd);
              }
              ga += sa;
              gb += sb;
              gd += sd;
            } else {
#pragma omp simd
              for (int64_t t = 0; t < nkeep; ++t) {
                const T p = exp_of<BF>(gqk[t] * sc - li);
                gp[t] = p;
                gw[t] = p * (gdp[t] - di) * sc;
              }
            }
            // 3) scatter to dK / dV, gather for dq
            for (int64_t t = 0; t < nkeep; ++t) {
              const int64_t j = gi[t];
              axpy(gw[t], qi, dK + j * D, D);
              axpy(gp[t], doi, dV + j * D, D);
              if (pb.fda) colH[j] += gh[t];
            }
            gather_pv<T>(gw.data(), gi.data(), nkeep, Kp, D, dqi);
            if (pb.fda) axpy(T(2) * rh, qi, dqi, D);
          }
          continue;
        }
        if constexpr (BF) {
#if VTRACK_ISA_BF16
          const uint16_t* qb16 = q + (bh * N + i0) * D;  // the block's bf16 rows, packed as they are
          const uint16_t* gb16 = gout + (bh * N + i0) * D;
          pack_q_bf16(qb16, nr, D, Qb.data(), D2q);
          pack_q_bf16(gb16, nr, D, dOb.data(), D2q);
          if (amx) {
            amx::qk_tiles(Qb.data(), D2q, nr, D2q, KT2.data(), ldS, S.data(), ldS);
            amx::qk_tiles(dOb.data(), D2q, nr, D2q, VT2.data(), ldS, dP.data(), ldS);
          } else {
            if (dq_tiled) pack_v_bf16(qb16, nr, D, QP.data());
            if (dq_tiled) pack_v_bf16(gb16, nr, D, dOP.data());
            qk_tiles_bf16(Qb.data(), nr, D2, KT2.data(), ldS, S.data(), ldS);
            qk_tiles_bf16(dOb.data(), nr, D2, VT2.data(), ldS, dP.data(), ldS);
          }
#endif
        } else if constexpr (kTiles) {
          qk_tiles(Q, nr, D, KT.data(), ldS, S.data(), ldS);
          qk_tiles(dO, nr, D, VT.data(), ldS, dP.data(), ldS);
        } else {
          gemm<T>(false, true, nr, M, D, Q, D, Kp, D, T(0), S.data(), ldS, use_blas, tmp);
          gemm<T>(false, true, nr, M, D, dO, D, V, D, T(0), dP.data(), ldS, use_blas, tmp);
        }
        for (int64_t r = 0; r < nr; ++r) {
          T* __restrict__ s = S.data() + r * ldS;
          T* __restrict__ dp = dP.data() + r * ldS;
          const T li = L[r], di = Di[r];
          const T* ign = mrow_t != nullptr ? mrow_t : nomask.data();
          if (pb.topk > 0) {
            std::fill(ignore.begin(), ignore.end(), T(1));
            const int32_t* irow = index + (bh * N + i0 + r) * K;
            for (int64_t t = 0; t < K; ++t)
              if (irow[t] >= 0 && irow[t] < M) ignore[irow[t]] = T(0);
            ign = ignore.data();
          }
          if (pb.fda) {
            const T qn = dot(Q + r * D, Q + r * D, D);
            T rh = 0, sa = 0, sb = 0, sd = 0;
            fda_backward_row<T, BF>(kn.data(), ign, s, dp, colH.data(), M, qn, sc, c, li, di, rh, sa, sb, sd);
            rowH[r] = rh;
            ga += sa;
            gb += sb;
            gd += sd;
          } else {
#pragma omp simd
            for (int64_t j = 0; j < M; ++j) {
              const T p = ign[j] != T(0) ? T(0) : exp_of<BF>(s[j] * sc - li);
              s[j] = p;
              dp[j] = p * (dp[j] - di) * sc;
            }
          }
        }
        if (dq_tiled) {
          if constexpr (BF) {
#if VTRACK_ISA_BF16
            round_rows_bf16(dP.data(), ldS, nr, M, dS2.data(), ldP2);
            if (amx) amx::pair_tiles(dS2.data(), ldP2, nr, M2v, KP.data(), D, ones.data(), dQ);
            else pv_tiles_bf16(dS2.data(), ldP2, nr, M2, KP.data(), D, ones.data(), dQ);
#endif
          } else if constexpr (kTiles) {
            pv_tiles(dP.data(), ldS, nr, M, Kp, D, ones.data(), dQ);
          }
        } else {
          gemm<T>(false, false, nr, D, M, dP.data(), ldS, Kp, D, T(0), dQ, D, use_blas, tmp);
        }
        if (pb.fda)
          for (int64_t r = 0; r < nr; ++r) axpy(T(2) * rowH[r], Q + r * D, dQ + r * D, D);
        if (BF && dq_tiled) {
#if VTRACK_ISA_BF16
          const int64_t nr2 = (nr + 1) / 2;
          if (amx) {  // dK^T += Q^T.dS, dV^T += dO^T.P (the pair rows of T2 past nr2 zeroed: finite B rows)
            const int64_t K2p = amx::pad(nr2);
            pair_rows_bf16(dP.data(), ldS, nr, M, T2.data(), ldS);
            std::fill(T2.begin() + nr2 * ldS, T2.begin() + K2p * ldS, 0u);
            amx::pair_cols_t(q + (bh * N + i0) * D, nr, D, QP.data(), kPairsQB);
            amx::tn_tiles_t(QP.data(), kPairsQB, D, K2p, T2.data(), ldS, ldS, dKT.data(), ldS);
            pair_rows_bf16(S.data(), ldS, nr, M, T2.data(), ldS);
            amx::pair_cols_t(gout + (bh * N + i0) * D, nr, D, dOP.data(), kPairsQB);
            amx::tn_tiles_t(dOP.data(), kPairsQB, D, K2p, T2.data(), ldS, ldS, dVT.data(), ldS);
          } else {
            pair_rows_bf16(dP.data(), ldS, nr, M, T2.data(), ldS);
            tn_tiles_bf16(T2.data(), ldS, M, nr2, QP.data(), D, dK);  // dK += dS^T.Q
            pair_rows_bf16(S.data(), ldS, nr, M, T2.data(), ldS);
            tn_tiles_bf16(T2.data(), ldS, M, nr2, dOP.data(), D, dV);  // dV += P^T.dO
          }
#endif
        } else {
          gemm<T>(true, false, M, D, nr, dP.data(), ldS, Q, D, T(1), dK, D, use_blas, tmp);
          gemm<T>(true, false, M, D, nr, S.data(), ldS, dO, D, T(1), dV, D, use_blas, tmp);
        }
      }
#if VTRACK_ISA_BF16
      if (!dKT.empty()) {  // AMX: dK, dV from the head's dK^T, dV^T (overwriting the zeros)
        transpose_f32(dKT.data(), ldS, D, M, dK, D);
        transpose_f32(dVT.data(), ldS, D, M, dV, D);
      }
#endif
      if (pb.fda) {
        for (int64_t j = 0; j < M; ++j) axpy(T(2) * colH[j], Kp + j * D, dK + j * D, D);
        dcoef[bh * 3 + 0] = ga;
        dcoef[bh * 3 + 1] = gb;
        dcoef[bh * 3 + 2] = gd;
      }
    }
  });
}

#if !VTRACK_ISA_BF16
// The exported table: plain function pointers to this ISA's instantiations.
void forward_f32(const Problem& pb, const float* q, const float* k, const float* v, float* out, float* lse,
                 int32_t* index, float* ce_probs) {
  forward_kernel<float>(pb, q, k, v, out, lse, index, ce_probs);
}
void forward_f64(const Problem& pb, const double* q, const double* k, const double* v, double* out, double* lse,
                 int32_t* index, double* ce_probs) {
  forward_kernel<double>(pb, q, k, v, out, lse, index, ce_probs);
}
void backward_f32(const Problem& pb, const float* q, const float* k, const float* v, const float* out,
                  const float* lse, const int32_t* index, const float* gout, float* dq, float* dk, float* dv,
                  double* dcoef) {
  backward_kernel<float>(pb, q, k, v, out, lse, index, gout, dq, dk, dv, dcoef);
}
void backward_f64(const Problem& pb, const double* q, const double* k, const double* v, const double* out,
                  const double* lse, const int32_t* index, const double* gout, double* dq, double* dk, double* dv,
                  double* dcoef) {
  backward_kernel<double>(pb, q, k, v, out, lse, index, gout, dq, dk, dv, dcoef);
}
#endif

#if VTRACK_ISA_BF16
void forward_bf16(const Problem& pb, const uint16_t* q, const uint16_t* k, const uint16_t* v, float* out, float* lse,
                  int32_t* index, float* ce_probs) {
  forward_kernel<float, true>(pb, q, k, v, out, lse, index, ce_probs);
}
void backward_bf16(const Problem& pb, const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* out,
                   const float* lse, const int32_t* index, const uint16_t* gout, float* dq, float* dk, float* dv,
                   double* dcoef) {
  backward_kernel<float, true>(pb, q, k, v, out, lse, index, gout, dq, dk, dv, dcoef);
}
#endif

}  // namespace

#if VTRACK_ISA_BF16
// float32/float64 and the backward: the avx512 path's kernels (this unit compiles only the bf16 forward).
const KernelTable* kernel_table() {
  const KernelTable* base = avx512::kernel_table();
  if (base == nullptr) return nullptr;
  static const KernelTable table{VTRACK_ISA_NAME,    base->forward_f32,  base->forward_f64, base->backward_f32,
                                 base->backward_f64, &forward_bf16,      &backward_bf16,
                                 VTRACK_ISA_AMX != 0};
  return &table;
}
#else
const KernelTable* kernel_table() {
  static const KernelTable table{VTRACK_ISA_NAME, &forward_f32, &forward_f64, &backward_f32, &backward_f64};
  return &table;
}
#endif

}  // namespace VTRACK_ISA_NS
}  // namespace cpu
}  // namespace vtrack
