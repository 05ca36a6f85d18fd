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

template <typename T>
struct Coefs {
  T a, b, dl;
};

// FDA logits of one row in place, returning their maximum (no mask). Used for dense rows, where a NaN
// logit needs no flag: it propagates through the exponentials into the row's output and LSE. Kept out
// of line so that the vectoriser sees plain restrict pointers.
template <typename T>
__attribute__((noinline, noclone)) T fda_logits_max(const T* __restrict__ kn, T* __restrict__ s, int64_t M, T qn,
                                                     T sc, T a, T b, T dl) {
  T mx = neg_inf<T>();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < M; ++j) {
    const T qk = s[j];
    const T d2 = std::max(qn + kn[j] - T(2) * qk, T(0));
    const T rep = dl * d2;
    const T x = qk * sc + (a * fast_exp(-rep) - b * rep);
    s[j] = x;
    mx = std::max(mx, x);
  }
  return mx;
}

// Turns raw q.k products of one row into final logits in place (scale, FDA bias, mask) and returns
// their maximum; `nan` is set when a logit is NaN (always for top-K rows, which must not select
// NaN; dense rows may leave it to the NaN propagating through the softmax).
template <typename T>
inline T finish_logits(const Problem& pb, const Coefs<T>& c, T qn, const T* __restrict__ kn,
                       const T* __restrict__ mrow, T* __restrict__ s, int64_t M, bool& nan) {
  const T sc = static_cast<T>(pb.scale);
  T mx = neg_inf<T>();
  int bad = 0;
  if (pb.fda && pb.topk == 0 && mrow == nullptr) {
    const T mx_fda = fda_logits_max<T>(kn, s, M, qn, sc, c.a, c.b, c.dl);
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
      s[j] = qk * sc + (a * fast_exp(-rep) - b * rep);
    }
  }
  const T sc2 = pb.fda ? T(1) : sc;  // the FDA pass above already scaled
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

// Selects the min(K, valid) largest logits of a row (NaN-free, masked keys are -inf and excluded through
// `mrow`), ties toward the lower key index. Writes the kept indices in ascending order to `kept` (room
// for M + 16 entries) and returns their count.
//
// The K-th largest value tau is found by bisection on the value with vectorised counting, started
// from a lower bound: the smallest of K strided group maxima (each of the K groups holds a logit at
// least that large, so at least K logits are >= it). Then every logit > tau is kept, plus the
// lowest-index logits equal to tau until K are kept.
template <typename T>
int64_t select_topk(const T* __restrict__ s, const bool* __restrict__ mrow, int64_t M, int64_t K, int64_t nvalid,
                    T row_max, int32_t* __restrict__ kept, std::vector<T>& gmax) {
  if (K >= nvalid) {
    int64_t c = 0;
    for (int64_t j = 0; j < M; ++j) {
      kept[c] = static_cast<int32_t>(j);
      c += (mrow == nullptr || !mrow[j]);
    }
    return c;
  }
  gmax.assign(static_cast<size_t>(K), neg_inf<T>());
  T* __restrict__ g = gmax.data();
  for (int64_t base = 0; base < M; base += K) {
    const int64_t len = std::min(K, M - base);
    const T* __restrict__ sb = s + base;
#pragma omp simd
    for (int64_t t = 0; t < len; ++t) g[t] = std::max(g[t], sb[t]);
  }
  T lo = std::numeric_limits<T>::max();
#pragma omp simd reduction(min : lo)
  for (int64_t t = 0; t < K; ++t) lo = std::min(lo, g[t]);
  lo = std::max(lo, std::numeric_limits<T>::lowest());  // masked keys are -inf: count valid ones only
  // Bisection on the order-preserving integer image of the floats: at most 32 (64) steps.
  // Invariant: count_ge(lo) >= K > count_ge(hi).
  using Key = typename OrderedKey<T>::type;
  using UKey = std::make_unsigned_t<Key>;
  Key klo = OrderedKey<T>::to(lo);
  Key khi = OrderedKey<T>::to(std::nextafter(row_max, std::numeric_limits<T>::infinity()));
  while (klo < khi && static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) > 1) {
    const Key kmid = static_cast<Key>(static_cast<UKey>(klo) +
                                      static_cast<UKey>(static_cast<UKey>(khi) - static_cast<UKey>(klo)) / 2);
    const int64_t c = count_ge(s, M, OrderedKey<T>::from(kmid));
    if (c >= K) {
      klo = kmid;
      if (c == K) break;
    } else {
      khi = kmid;
    }
  }
  lo = OrderedKey<T>::from(klo);
  // tau: the smallest logit >= lo, i.e. the K-th largest.
  T tau = std::numeric_limits<T>::infinity();
#pragma omp simd reduction(min : tau)
  for (int64_t j = 0; j < M; ++j) {
    const T cand = s[j] >= lo ? s[j] : std::numeric_limits<T>::infinity();
    tau = std::min(tau, cand);
  }
  int32_t n_gt = 0, n_eq = 0;
#pragma omp simd reduction(+ : n_gt, n_eq)
  for (int64_t j = 0; j < M; ++j) {
    n_gt += s[j] > tau ? 1 : 0;
    n_eq += s[j] == tau ? 1 : 0;
  }
  int64_t c = 0;
  if (n_gt + n_eq <= K) {  // no surplus ties: keep every logit >= tau (branch-free compaction)
    int64_t j = 0;
#if VTRACK_ISA_AVX512
    if constexpr (std::is_same<T, float>::value) {
      const __m512 vt = _mm512_set1_ps(tau);
      __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      const __m512i step = _mm512_set1_epi32(16);
      for (; j + 16 <= M; j += 16) {  // compress in a register, store 16 lanes (kept has M + 16 room)
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + j), vt, _CMP_GE_OQ);
        _mm512_storeu_si512(reinterpret_cast<void*>(kept + c), _mm512_maskz_compress_epi32(m, idx));
        c += __builtin_popcount(static_cast<unsigned>(m));
        idx = _mm512_add_epi32(idx, step);
      }
    }
#endif
    for (; j < M; ++j) {
      kept[c] = static_cast<int32_t>(j);
      c += s[j] >= tau;
    }
    return std::min(c, K);
  }
  int64_t need_eq = K - n_gt;
  for (int64_t j = 0; j < M && c < K; ++j) {
    if (s[j] > tau || (s[j] == tau && need_eq-- > 0)) kept[c++] = static_cast<int32_t>(j);
  }
  return c;
}

// One row of the dense FDA backward, in place: s holds q.k on entry and P on exit, dp holds dO.v on
// entry and the coefficient of k_j in dq_i (scale*dS - 2h) on exit; colH/rh/sa/sb/sd accumulate the
// FDA terms. Kept out of line so that the vectoriser sees plain restrict pointers.
template <typename T>
__attribute__((noinline, noclone)) void fda_backward_row(const T* __restrict__ kn, const T* __restrict__ ign,
                                                T* __restrict__ s, T* __restrict__ dp, T* __restrict__ colH,
                                                int64_t M, T qn, T sc, Coefs<T> c, T li, T di, T& rh_out,
                                                T& sa_out, T& sb_out, T& sd_out) {
  const T ca = c.a, cb = c.b, dl = c.dl;
  T rh = 0, sa = 0, sb = 0, sd = 0;
#pragma omp simd reduction(+ : rh, sa, sb, sd)
  for (int64_t j = 0; j < M; ++j) {
    const T qk = s[j];
    const T d2raw = qn + kn[j] - T(2) * qk;
    const T d2 = std::max(d2raw, T(0));
    const T e = fast_exp(-dl * d2);
    const T logit = qk * sc + ca * e - cb * dl * d2;
    const T pe = fast_exp(logit - li);
    const T p = ign[j] != T(0) ? T(0) : pe;
    const T ds = p * (dp[j] - di);
    const T g = -dl * (ca * e + cb);
    const T hterm = d2raw >= T(0) ? ds * g : T(0);
    s[j] = p;
    dp[j] = ds * sc - T(2) * hterm;
    colH[j] += hterm;
    rh += hterm;
    sa += ds * e;
    sb -= ds * dl * d2;
    sd -= ds * d2 * (ca * e + cb);
  }
  rh_out = rh;
  sa_out = sa;
  sb_out = sb;
  sd_out = sd;
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

template <typename T>
void forward_kernel(const Problem& pb, const T* q, const T* k, const T* v, T* out, T* lse, int32_t* index,
                    T* ce_probs) {
  const int64_t B = pb.d.B, H = pb.d.H, N = pb.d.N, M = pb.d.M, D = pb.d.D, K = pb.K;
  const int64_t nqb = (N + kBlockQ - 1) / kBlockQ;
  const int64_t ntask = B * H * nqb;
  const int64_t Ls = pb.num_template > 0 ? M - pb.num_template : 0;
  const int64_t nT = static_cast<int64_t>(pb.template_rows.size());
  const bool use_blas = blas_enabled();
  const T inf = std::numeric_limits<T>::infinity();

  at::parallel_for(0, ntask, 1, [&](int64_t task_begin, int64_t task_end) {

    std::vector<T> S(static_cast<size_t>(kBlockQ * M)), kn(pb.fda ? M : 0), qn(kBlockQ), inv(kBlockQ), tmp;
    std::vector<T> gmax, pe(static_cast<size_t>(M));
    std::vector<int32_t> kept(static_cast<size_t>(M + 16));

    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t bh = task / nqb, qb = task % nqb, b = bh / H, h = bh % H;
      const int64_t i0 = qb * kBlockQ, nr = std::min(kBlockQ, N - i0);
      const T* Q = q + (bh * N + i0) * D;
      const T* Kp = k + bh * M * D;
      const T* V = v + bh * M * D;
      T* O = out + (bh * N + i0) * D;
      const bool* mrow = pb.mask != nullptr ? pb.mask + b * M : nullptr;
      const T* mrow_t = pb.mask != nullptr ? static_cast<const T*>(pb.mask_t) + b * M : nullptr;
      const Coefs<T> c{pb.fda ? T(pb.alpha[h]) : T(0), pb.fda ? T(pb.beta[h]) : T(0),
                       pb.fda ? T(pb.delta[h]) : T(0)};
      if (pb.fda) {
        for (int64_t j = 0; j < M; ++j) kn[j] = dot(Kp + j * D, Kp + j * D, D);
        for (int64_t r = 0; r < nr; ++r) qn[r] = dot(Q + r * D, Q + r * D, D);
      }
      gemm<T>(false, true, nr, M, D, Q, D, Kp, D, T(0), S.data(), M, use_blas, tmp);
      // Top-K rows use sparse gathers for P.V when few keys are kept, else the dense block product.
      const bool sparse = pb.topk > 0 && 4 * K <= M;
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t i = i0 + r;
        T* __restrict__ s = S.data() + r * M;
        T* __restrict__ o = O + r * D;
        bool nan = false;
        const T rmax = finish_logits<T>(pb, c, qn[r], kn.data(), mrow_t, s, M, nan);
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
          const int64_t nk = select_topk<T>(s, mrow, M, K, pb.nvalid[b], rmax, kept.data(), gmax);
          int32_t* irow = index + (bh * N + i) * K;
          std::copy(kept.data(), kept.data() + nk, irow);
          std::fill(irow + nk, irow + K, -1);
          T sum = 0;
          T* __restrict__ e = pe.data();
          for (int64_t t = 0; t < nk; ++t) {
            e[t] = fast_exp(s[kept[t]] - rmax);
            sum += e[t];
          }
          const T isum = T(1) / sum;
          *lrow = rmax + std::log(sum);
          if (sparse) {
            std::fill(o, o + D, T(0));
            for (int64_t t = 0; t < nk; ++t) axpy(e[t] * isum, V + int64_t(kept[t]) * D, o, D);
            inv[r] = T(1);
            if (nT > 0) {  // normalised sparse probabilities for the CE rows
              std::fill(s, s + M, T(0));
              for (int64_t t = 0; t < nk; ++t) s[kept[t]] = e[t] * isum;
            }
          } else {
            std::fill(s, s + M, T(0));
            for (int64_t t = 0; t < nk; ++t) s[kept[t]] = e[t];
            inv[r] = isum;
          }
        } else {
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < M; ++j) {
            const T e = fast_exp(s[j] - rmax);
            s[j] = e;
            sum += e;
          }
          inv[r] = T(1) / sum;
          *lrow = rmax + std::log(sum);
        }
      }
      if (!sparse) {
        gemm<T>(false, false, nr, D, M, S.data(), M, V, D, T(0), O, D, use_blas, tmp);
        for (int64_t r = 0; r < nr; ++r) {
          T* __restrict__ o = O + r * D;
          const T f = inv[r];
          if (lse[bh * N + i0 + r] != lse[bh * N + i0 + r]) continue;  // NaN row stays NaN
#pragma omp simd
          for (int64_t x = 0; x < D; ++x) o[x] *= f;
        }
      }
      if (nT > 0) {
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t i = i0 + r;
          const T f = inv[r];
          const T* s = S.data() + r * M + pb.num_template;
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

template <typename T>
void backward_kernel(const Problem& pb, const T* q, const T* k, const T* v, const T* out, const T* lse,
                     const int32_t* index, const T* gout, T* dq, T* dk, T* dv, double* dcoef /*[B*H*3]*/) {
  const int64_t B = pb.d.B, H = pb.d.H, N = pb.d.N, M = pb.d.M, D = pb.d.D, K = pb.K;
  const bool use_blas = blas_enabled();
  const T sc = static_cast<T>(pb.scale);

  at::parallel_for(0, B * H, 1, [&](int64_t task_begin, int64_t task_end) {

    const bool sparse = pb.topk > 0 && 4 * K <= M;
    std::vector<T> S, dP, kn(M), colH(M), tmp, Di(kBlockQB), rowH(kBlockQB);
    std::vector<T> ignore(pb.topk > 0 ? M : 0);  // dense top-K rows: 1 for keys not kept
    const std::vector<T> nomask(static_cast<size_t>(M), T(0));
    if (!sparse) {
      S.resize(static_cast<size_t>(kBlockQB * M));
      dP.resize(static_cast<size_t>(kBlockQB * M));
    }

    for (int64_t bh = task_begin; bh < task_end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* Kp = k + bh * M * D;
      const T* V = v + bh * M * D;
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
      double ga = 0, gb = 0, gd = 0;
      for (int64_t i0 = 0; i0 < N; i0 += kBlockQB) {
        const int64_t nr = std::min(kBlockQB, N - i0);
        const T* Q = q + (bh * N + i0) * D;
        const T* dO = gout + (bh * N + i0) * D;
        const T* L = lse + bh * N + i0;
        T* dQ = dq + (bh * N + i0) * D;
        for (int64_t r = 0; r < nr; ++r) Di[r] = dot(dO + r * D, out + (bh * N + i0 + r) * D, D);
        if (sparse) {
          for (int64_t r = 0; r < nr; ++r) {
            const T* qi = Q + r * D;
            const T* doi = dO + r * D;
            T* dqi = dQ + r * D;
            std::fill(dqi, dqi + D, T(0));
            const T qn = pb.fda ? dot(qi, qi, D) : T(0);
            const int32_t* irow = index + (bh * N + i0 + r) * K;
            T rh = 0;
            for (int64_t t = 0; t < K; ++t) {
              const int64_t j = irow[t];
              if (j < 0 || j >= M) continue;  // padding (or an invalid index from a direct call)
              const T* kj = Kp + j * D;
              const T qk = dot(qi, kj, D);
              T logit = qk * sc, d2 = 0, e = 0;
              if (pb.fda) {
                const T d2raw = qn + kn[j] - T(2) * qk;
                d2 = std::max(d2raw, T(0));
                e = fast_exp(-c.dl * d2);
                logit += c.a * e - c.b * c.dl * d2;
              }
              const T p = fast_exp(logit - L[r]);
              const T dp = dot(doi, V + j * D, D);
              const T ds = p * (dp - Di[r]);
              T g = ds * sc;
              if (pb.fda) {
                const T d2raw = qn + kn[j] - T(2) * qk;
                const T hterm = d2raw >= T(0) ? ds * (-c.dl * (c.a * e + c.b)) : T(0);
                g -= T(2) * hterm;
                rh += hterm;
                colH[j] += hterm;
                ga += double(ds * e);
                gb += double(-ds * c.dl * d2);
                gd += double(-ds * d2 * (c.a * e + c.b));
              }
              axpy(g, kj, dqi, D);
              axpy(g, qi, dK + j * D, D);
              axpy(p, doi, dV + j * D, D);
            }
            if (pb.fda) axpy(T(2) * rh, qi, dqi, D);
          }
          continue;
        }
        gemm<T>(false, true, nr, M, D, Q, D, Kp, D, T(0), S.data(), M, use_blas, tmp);
        gemm<T>(false, true, nr, M, D, dO, D, V, D, T(0), dP.data(), M, use_blas, tmp);
        for (int64_t r = 0; r < nr; ++r) {
          T* __restrict__ s = S.data() + r * M;
          T* __restrict__ dp = dP.data() + r * M;
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
            fda_backward_row<T>(kn.data(), ign, s, dp, colH.data(), M, qn, sc, c, li, di, rh, sa, sb, sd);
            rowH[r] = rh;
            ga += sa;
            gb += sb;
            gd += sd;
          } else {
#pragma omp simd
            for (int64_t j = 0; j < M; ++j) {
              const T p = ign[j] != T(0) ? T(0) : fast_exp(s[j] * sc - li);
              s[j] = p;
              dp[j] = p * (dp[j] - di) * sc;
            }
          }
        }
        gemm<T>(false, false, nr, D, M, dP.data(), M, Kp, D, T(0), dQ, D, use_blas, tmp);
        if (pb.fda)
          for (int64_t r = 0; r < nr; ++r) axpy(T(2) * rowH[r], Q + r * D, dQ + r * D, D);
        gemm<T>(true, false, M, D, nr, dP.data(), M, Q, D, T(1), dK, D, use_blas, tmp);
        gemm<T>(true, false, M, D, nr, S.data(), M, dO, D, T(1), dV, D, use_blas, tmp);
      }
      if (pb.fda) {
        for (int64_t j = 0; j < M; ++j) axpy(T(2) * colH[j], Kp + j * D, dK + j * D, D);
        dcoef[bh * 3 + 0] = ga;
        dcoef[bh * 3 + 1] = gb;
        dcoef[bh * 3 + 2] = gd;
      }
    }
  });
}

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

}  // namespace

const KernelTable* kernel_table() {
  static const KernelTable table{VTRACK_ISA_NAME, &forward_f32, &forward_f64, &backward_f32, &backward_f64};
  return &table;
}

}  // namespace VTRACK_ISA_NS
}  // namespace cpu
}  // namespace vtrack
